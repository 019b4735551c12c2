;; Correct code that proof-carrying code used to reject, each shape found by `clif-bounds fuzz
;; --pcc` in generated modules (seeds 0, 4, 120, 548 and the Spectre forms of 0 and 112) and
;; reduced by hand. `tests/wasm.rs` runs it with PCC on both backends, both Spectre settings
;; and every preset, so a rejection fails the module.

;; An access to a memory whose bound is 0: its check always fails. The index is a condition
;; (0 or 1), the bound the constant 0; the code after the check never runs, and with Spectre
;; mitigation its guard always chooses null.
(module
  (memory 0 0)
  (func (export "eqz-index") (param i64) (result i32)
    (i32.load8_s (i64.eqz (local.get 0))))
  (func (export "const-index") (result i64)
    (i64.load offset=3 (i32.const 1)))
)
(assert_trap (invoke "eqz-index" (i64.const 0)) "out of bounds memory access")
(assert_trap (invoke "eqz-index" (i64.const 7)) "out of bounds memory access")
(assert_trap (invoke "const-index") "out of bounds memory access")

;; A condition as the index of a memory that may grow, whose minimum covers nothing: a
;; zero-extended flag is at most 255, so the check bounds the sum.
(module
  (memory 0 2)
  (func (export "flag-index") (param i32) (result i32)
    (i32.load16_u (i32.eqz (local.get 0))))
  (func (export "flag-index-f32") (param i32 i32) (result f32)
    (f32.load offset=4 (i32.lt_u (local.get 0) (local.get 1))))
  (func (export "grow") (result i32) (memory.grow (i32.const 1)))
)
(assert_trap (invoke "flag-index" (i32.const 0)) "out of bounds memory access")
(assert_trap (invoke "flag-index-f32" (i32.const 1) (i32.const 2)) "out of bounds memory access")
(assert_return (invoke "grow") (i32.const 0))
(assert_return (invoke "flag-index" (i32.const 0)) (i32.const 0))
(assert_return (invoke "flag-index-f32" (i32.const 1) (i32.const 2)) (f32.const 0))

;; Code after an access that always traps (its offset is past every possible bound) and the
;; blocks it dominates: never run, so never checked, including a call to `memory.grow`
;; whose argument is computed after the trap, and an access through `memory.size`.
(module
  (memory 0 1)
  (func (export "grow-after-trap") (param i32) (result i32)
    (drop (i32.load offset=0x10000000 (local.get 0)))
    (loop (br_if 0 (i32.eqz (i32.const 1))))
    (memory.grow (i32.reinterpret_f32 (f32.const 1))))
  (func (export "size-index-after-trap") (result i32)
    (drop (i64.load8_u (i32.const -1628948291)))
    (loop (br_if 0 (i32.eqz (i32.const 1))))
    (i32.load8_s (memory.size)))
)
(assert_trap (invoke "grow-after-trap" (i32.const 0)) "out of bounds memory access")
(assert_trap (invoke "size-index-after-trap") "out of bounds memory access")
