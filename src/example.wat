;; Sums `n` i32 values starting at byte `ptr` of memory 0 and overwrites the last one read
;; with the sum (so the store is checked too).
(module
  (memory (export "memory") 1 4)
  (data (i32.const 16) "\01\00\00\00\02\00\00\00\03\00\00\00\04\00\00\00")
  (func (export "sum") (param $ptr i32) (param $n i32) (result i32)
    (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (i32.load (local.get $ptr))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.store offset=0 (i32.sub (local.get $ptr) (i32.const 4)) (local.get $acc))
    (local.get $acc))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
