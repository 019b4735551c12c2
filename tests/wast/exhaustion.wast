;; Runaway recursion in a function with many live values (so that its frame spills and its
;; prologue moves the stack pointer far at once) ends in "call stack exhausted" wherever the
;; overflow faults, never in a crash of the host: the trap handler must not read the stack
;; past its end when it looks for a backtrace.
(module
  (memory 1)
  (func $rec (param i64) (result i64)
    (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 f64 f64 f64 f64 f64 f64 f64 f64)
    (local.set 1 (i64.mul (local.get 0) (i64.const 3)))
    (local.set 2 (i64.add (local.get 1) (i64.const 5)))
    (local.set 3 (i64.xor (local.get 2) (local.get 0)))
    (local.set 4 (i64.add (local.get 3) (local.get 1)))
    (local.set 5 (i64.add (local.get 4) (local.get 2)))
    (local.set 6 (i64.add (local.get 5) (local.get 3)))
    (local.set 7 (i64.add (local.get 6) (local.get 4)))
    (local.set 8 (i64.add (local.get 7) (local.get 5)))
    (local.set 17 (f64.convert_i64_s (local.get 8)))
    (local.set 18 (f64.add (local.get 17) (f64.const 1)))
    (i64.add
      (i64.add (i64.add (local.get 1) (local.get 2)) (i64.add (local.get 3) (local.get 4)))
      (i64.add (i64.add (local.get 5) (local.get 6))
        (i64.add (i64.trunc_f64_s (local.get 18))
          (call $rec (i64.add (local.get 0) (i64.const 1)))))))
  (func (export "deep") (result i64) (call $rec (i64.const 0))))

(assert_exhaustion (invoke "deep") "call stack exhausted")
(assert_exhaustion (invoke "deep") "call stack exhausted")
(assert_exhaustion (invoke "deep") "call stack exhausted")
