;; Results of any arity on every engine: more than any backend returns in registers (x86_64
;; 2 integers and 2 floats, Pulley 15 and 16), from direct calls, `call_indirect`, an
;; imported function of another instance, and the host's own call.

(module $M
  (type $many (func (param i32) (result i64 i64 i64 i32 f64 f64 f64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 f32)))
  (table funcref (elem $f))
  (func $f (export "f") (type $many)
    (i64.const 1) (i64.const 2) (i64.const 3) (local.get 0) (f64.const 1.5) (f64.const 2.5)
    (f64.const 3.5) (i64.const 4) (i64.const 5) (i64.const 6) (i64.const 7) (i64.const 8)
    (i64.const 9) (i64.const 10) (i64.const 11) (i64.const 12) (i64.const 13) (i64.const 14)
    (f32.const -0.5))
  ;; Every result weighed by its position: any two swapped change the sum.
  (func $weigh (param i64 i64 i64 i32 f64 f64 f64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 f32)
               (result i64)
    (i64.add (i64.mul (local.get 0) (i64.const 1))
    (i64.add (i64.mul (local.get 1) (i64.const 2))
    (i64.add (i64.mul (local.get 2) (i64.const 3))
    (i64.add (i64.mul (i64.extend_i32_u (local.get 3)) (i64.const 4))
    (i64.add (i64.mul (i64.trunc_f64_s (f64.mul (local.get 4) (f64.const 2))) (i64.const 5))
    (i64.add (i64.mul (i64.trunc_f64_s (f64.mul (local.get 5) (f64.const 2))) (i64.const 6))
    (i64.add (i64.mul (i64.trunc_f64_s (f64.mul (local.get 6) (f64.const 2))) (i64.const 7))
    (i64.add (i64.mul (local.get 7) (i64.const 8))
    (i64.add (i64.mul (local.get 8) (i64.const 9))
    (i64.add (i64.mul (local.get 9) (i64.const 10))
    (i64.add (i64.mul (local.get 10) (i64.const 11))
    (i64.add (i64.mul (local.get 11) (i64.const 12))
    (i64.add (i64.mul (local.get 12) (i64.const 13))
    (i64.add (i64.mul (local.get 13) (i64.const 14))
    (i64.add (i64.mul (local.get 14) (i64.const 15))
    (i64.add (i64.mul (local.get 15) (i64.const 16))
    (i64.add (i64.mul (local.get 16) (i64.const 17))
    (i64.add (i64.mul (local.get 17) (i64.const 18))
             (i64.mul (i64.trunc_f32_s (f32.mul (local.get 18) (f32.const -2))) (i64.const 19))
    )))))))))))))))))))
  (func (export "direct") (param i32) (result i64) (call $weigh (call $f (local.get 0))))
  (func (export "indirect") (param i32) (result i64)
    (call $weigh (call_indirect (type $many) (local.get 0) (i32.const 0))))
)
(register "M" $M)

(module $N
  (type $many (func (param i32) (result i64 i64 i64 i32 f64 f64 f64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 f32)))
  (import "M" "f" (func $f (type $many)))
  (func (export "imported") (param i32) (result i64)
    local.get 0
    call $f
    drop drop drop drop drop drop drop drop drop
    drop drop drop drop drop drop drop drop drop)
  (func (export "last") (param i32) (result f32 i64)
    (local $a f32) (local $b i64)
    local.get 0
    call $f
    local.set $a
    local.set $b
    drop drop drop drop drop drop drop drop drop
    drop drop drop drop drop drop drop drop
    local.get $a
    local.get $b)
)

;; 1*1 + 2*2 + 3*3 + 4*7 + 5*3 + 6*5 + 7*7 + 8*4 + 9*5 + ... + 18*14 + 19*1
(assert_return (invoke $M "direct" (i32.const 7)) (i64.const 1552))
(assert_return (invoke $M "indirect" (i32.const 7)) (i64.const 1552))
(assert_return (invoke $M "direct" (i32.const 8)) (i64.const 1556))
(assert_return (invoke $N "imported" (i32.const 7)) (i64.const 1))
(assert_return (invoke $N "last" (i32.const 7)) (f32.const -0.5) (i64.const 14))
(assert_return (invoke $M "f" (i32.const 9))
  (i64.const 1) (i64.const 2) (i64.const 3) (i32.const 9) (f64.const 1.5) (f64.const 2.5)
  (f64.const 3.5) (i64.const 4) (i64.const 5) (i64.const 6) (i64.const 7) (i64.const 8)
  (i64.const 9) (i64.const 10) (i64.const 11) (i64.const 12) (i64.const 13) (i64.const 14)
  (f32.const -0.5))
