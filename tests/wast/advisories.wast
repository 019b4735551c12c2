;; The bounds-check advisories of Wasmtime and Cranelift, and the edges they lived on, as
;; regression tests of the one bounds-checked instruction. Each case says what the broken
;; lowering computed (the access that would escape, or the trap that should not happen) and
;; asserts what the spec requires. `tests/wasm.rs` runs this script on every engine (the
;; interpreter fused and legalized, pulley64, x86_64 fused and legalized, real Cranelift)
;; under every memory preset (static: 4 GiB reserved + 2 GiB guard; dynamic-guard: 64 KiB
;; guard; dynamic: no guard) and both Spectre settings among them.

;; ---------------------------------------------------------------------------------------
;; CVE-2023-26489 (GHSA-ff4p-7xrq-q5r8): on x86_64, `(i32.load (i32.shl x 3))` was folded into
;; the address mode `(base, x, 8)`, which shifts the 32-bit index in 64 bits: the i32 shift's
;; wrap-around was lost and the effective address reached 35 bits, up to 32 GiB past the base,
;; beyond a 4 GiB reservation plus 2 GiB guard. Here x = 0x2000_0001: the i32 shift gives 8,
;; the folded address mode 0x1_0000_0008, a read 4 GiB past the memory.
(module
  (memory 1)
  (data (i32.const 0) "\00\00\00\00\00\00\00\00\2a\00\00\00\00\00\00\00\07\00\00\00")
  (func (export "shl3") (param i32) (result i32)
    (i32.load (i32.shl (local.get 0) (i32.const 3))))
  (func (export "shl2-offset") (param i32) (result i32)
    (i32.load offset=4 (i32.shl (local.get 0) (i32.const 2))))
  (func (export "shl3-i64") (param i32) (result i64)
    (i64.load (i32.shl (local.get 0) (i32.const 3))))
  ;; The shift amount is taken modulo 32: 35 shifts by 3.
  (func (export "shl35") (param i32) (result i32)
    (i32.load (i32.shl (local.get 0) (i32.const 35))))
)
(assert_return (invoke "shl3" (i32.const 1)) (i32.const 42))
(assert_return (invoke "shl3" (i32.const 0x20000001)) (i32.const 42))
(assert_return (invoke "shl3" (i32.const 0xe0000002)) (i32.const 7))
(assert_return (invoke "shl2-offset" (i32.const 0x40000001)) (i32.const 42))
(assert_return (invoke "shl3-i64" (i32.const 0x20000001)) (i64.const 42))
(assert_return (invoke "shl35" (i32.const 0x20000001)) (i32.const 42))
;; 0x2000 << 3 = 0x1_0000: one past the page, in bounds of nothing.
(assert_trap (invoke "shl3" (i32.const 0x2000)) "out of bounds memory access")
(assert_trap (invoke "shl3" (i32.const 0x1fffffff)) "out of bounds memory access")

;; ---------------------------------------------------------------------------------------
;; The 2026 aarch64 shift-folding type confusion: an extended i32 shift used as a 64-bit
;; index was folded into `[base, w, uxtw #k]`, which extends *before* shifting, so the
;; shifted-out bits came back as bits 32..34 of the address. The same shapes on memory64,
;; where the index is an i64 built from an i32 shift.
(module
  (memory i64 1)
  (data (i64.const 8) "\2a\00\00\00\00\00\00\00")
  (func (export "extend-shl3") (param i32) (result i64)
    (i64.load (i64.extend_i32_u (i32.shl (local.get 0) (i32.const 3)))))
  (func (export "extend-shl3-offset") (param i32) (result i32)
    (i32.load offset=8 (i64.extend_i32_u (i32.shl (local.get 0) (i32.const 3)))))
  ;; The opposite confusion: a 64-bit shift must keep its high bits.
  (func (export "shl3-64") (param i64) (result i64)
    (i64.load (i64.shl (local.get 0) (i64.const 3))))
)
(assert_return (invoke "extend-shl3" (i32.const 0x20000001)) (i64.const 42))
(assert_return (invoke "extend-shl3-offset" (i32.const 0xe0000000)) (i32.const 42))
(assert_return (invoke "shl3-64" (i64.const 1)) (i64.const 42))
;; 0x2000_0001 << 3 in 64 bits is 0x1_0000_0008: 4 GiB past the page.
(assert_trap (invoke "shl3-64" (i64.const 0x20000001)) "out of bounds memory access")
;; ... while a 64-bit shift wraps at 2^64: 0x2000_0000_0000_0001 << 3 is 8.
(assert_return (invoke "shl3-64" (i64.const 0x2000000000000001)) (i64.const 42))

;; ---------------------------------------------------------------------------------------
;; CVE-2021-32629 (GHSA-hpqh-2wqx-7qp5): the x86_64 backend spilled an i32 and reloaded it
;; sign-extended, so an index >= 2^31 became 0xffff_ffff_8xxx_xxxx: an address 2 GiB *before*
;; the memory, which no guard covers. Sixteen i64 values stay live across the access, more
;; than x86_64's allocatable registers, so that the index is likely spilled on the way (the
;; test does not inspect the allocation; the script passes however it goes).
(module
  (memory 1)
  (data (i32.const 16) "\2a\00\00\00")
  (func (export "pressure") (param $i i32) (param $x i64) (result i64)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64) (local $e i64) (local $f i64)
    (local $g i64) (local $h i64) (local $j i64) (local $k i64) (local $l i64) (local $m i64)
    (local $n i64) (local $o i64) (local $p i64) (local $q i64) (local $idx i32)
    (local.set $a (i64.mul (local.get $x) (i64.const 3)))
    (local.set $b (i64.mul (local.get $x) (i64.const 5)))
    (local.set $c (i64.mul (local.get $x) (i64.const 7)))
    (local.set $d (i64.mul (local.get $x) (i64.const 11)))
    (local.set $e (i64.mul (local.get $x) (i64.const 13)))
    (local.set $f (i64.mul (local.get $x) (i64.const 17)))
    (local.set $g (i64.mul (local.get $x) (i64.const 19)))
    (local.set $h (i64.mul (local.get $x) (i64.const 23)))
    (local.set $j (i64.mul (local.get $x) (i64.const 29)))
    (local.set $k (i64.mul (local.get $x) (i64.const 31)))
    (local.set $l (i64.mul (local.get $x) (i64.const 37)))
    (local.set $m (i64.mul (local.get $x) (i64.const 41)))
    (local.set $n (i64.mul (local.get $x) (i64.const 43)))
    (local.set $o (i64.mul (local.get $x) (i64.const 47)))
    (local.set $p (i64.mul (local.get $x) (i64.const 53)))
    (local.set $q (i64.mul (local.get $x) (i64.const 59)))
    ;; A negative i32 (as signed) whose 32-bit sum wraps to the index.
    (local.set $idx (i32.add (local.get $i) (i32.const 0x80000000)))
    (i64.add
      (i64.extend_i32_u (i32.load (local.get $idx)))
      (i64.add (i64.add (i64.add (local.get $a) (local.get $b)) (i64.add (local.get $c) (local.get $d)))
        (i64.add (i64.add (i64.add (local.get $e) (local.get $f)) (i64.add (local.get $g) (local.get $h)))
          (i64.add (i64.add (i64.add (local.get $j) (local.get $k)) (i64.add (local.get $l) (local.get $m)))
            (i64.add (i64.add (local.get $n) (local.get $o)) (i64.add (local.get $p) (local.get $q))))))))
)
;; $i = 0x8000_0010: the index wraps to 16, where 42 is. The multipliers sum to 438.
(assert_return (invoke "pressure" (i32.const 0x80000010) (i64.const 1)) (i64.const 480))
;; $i = 0x10: the index is 0x8000_0010, above 2^31 (sign-extended: 2 GiB before the base).
(assert_trap (invoke "pressure" (i32.const 0x10) (i64.const 1)) "out of bounds memory access")

;; ---------------------------------------------------------------------------------------
;; x86_64 load sinking widened 8-byte loads to 16 (the copysign and f64x2.splat advisories):
;; a `movsd` load was sunk into an SSE instruction that reads 16 bytes, so the last 8 bytes
;; of memory could not be read without a fault, and a check made for 8 bytes guarded a
;; 16-byte read. The float operations that x86 computes with 16-byte masks, on the last bytes
;; of the memory, must return; one byte further must trap.
(module
  (memory 1)
  (data (i32.const 65528) "\00\00\00\00\00\00\f0\3f")
  (data (i32.const 65520) "\00\00\c0\3f")
  (func (export "copysign-last") (param i32) (result f64)
    (f64.copysign (f64.load (local.get 0)) (f64.const -2)))
  (func (export "abs-last") (param i32) (result f64) (f64.abs (f64.load (local.get 0))))
  (func (export "neg-last") (param i32) (result f64) (f64.neg (f64.load (local.get 0))))
  (func (export "f32-copysign") (param i32) (result f32)
    (f32.copysign (f32.load (local.get 0)) (f32.const -1)))
  ;; Narrow loads folded into wider arithmetic: the sum reads one byte, not four.
  (func (export "add-byte") (param i32) (result i32)
    (i32.add (i32.load8_u (local.get 0)) (i32.const 1)))
  (func (export "add-half") (param i32) (result i64)
    (i64.add (i64.load16_u (local.get 0)) (i64.const 1)))
)
(assert_return (invoke "copysign-last" (i32.const 65528)) (f64.const -1))
(assert_return (invoke "abs-last" (i32.const 65528)) (f64.const 1))
(assert_return (invoke "neg-last" (i32.const 65528)) (f64.const -1))
(assert_return (invoke "f32-copysign" (i32.const 65520)) (f32.const -1.5))
(assert_return (invoke "f32-copysign" (i32.const 65532)) (f32.const -1.875))
(assert_return (invoke "add-byte" (i32.const 65535)) (i32.const 0x40))
(assert_return (invoke "add-half" (i32.const 65534)) (i64.const 0x3ff1))
(assert_trap (invoke "copysign-last" (i32.const 65529)) "out of bounds memory access")
(assert_trap (invoke "abs-last" (i32.const 65529)) "out of bounds memory access")
(assert_trap (invoke "f32-copysign" (i32.const 65533)) "out of bounds memory access")
(assert_trap (invoke "add-byte" (i32.const 65536)) "out of bounds memory access")
(assert_trap (invoke "add-half" (i32.const 65535)) "out of bounds memory access")

;; ---------------------------------------------------------------------------------------
;; A baseline compiler's missing zero-extension (Winch on aarch64): the i32 index was added
;; to the offset in 64 bits without clearing its upper half first, so -1 + 4 was 3, in
;; bounds, where Wasm says 0xffff_ffff + 4, far out of bounds.
(module
  (memory 1)
  (data (i32.const 0) "\01\02\03\04\05\06\07\08")
  (func (export "load-offset4") (param i32) (result i32)
    (i32.load offset=4 (local.get 0)))
  (func (export "load8-offset1") (param i32) (result i32)
    (i32.load8_u offset=1 (local.get 0)))
  (func (export "store-offset4") (param i32)
    (i32.store offset=4 (local.get 0) (i32.const 0x55555555)))
)
(assert_return (invoke "load-offset4" (i32.const 0)) (i32.const 0x08070605))
(assert_trap (invoke "load-offset4" (i32.const -1)) "out of bounds memory access")
(assert_trap (invoke "load-offset4" (i32.const -4)) "out of bounds memory access")
(assert_trap (invoke "load8-offset1" (i32.const -1)) "out of bounds memory access")
(assert_trap (invoke "store-offset4" (i32.const -1)) "out of bounds memory access")
;; The trapping store wrote nothing.
(assert_return (invoke "load-offset4" (i32.const 0)) (i32.const 0x08070605))

;; ---------------------------------------------------------------------------------------
;; Off-by-ones at the exact end of memory: each width at size - width (the last access in
;; bounds) and one byte further, with and without an offset, before and after growth, and on
;; a memory of 1-byte pages whose size is not a multiple of any width.
(module
  (memory 1 3)
  (func (export "l8") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "l16") (param i32) (result i32) (i32.load16_u (local.get 0)))
  (func (export "l32") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "l64") (param i32) (result i64) (i64.load (local.get 0)))
  (func (export "l64-off") (param i32) (result i64) (i64.load offset=65528 (local.get 0)))
  (func (export "s64") (param i32) (i64.store (local.get 0) (i64.const -1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
)
(assert_return (invoke "l8" (i32.const 65535)) (i32.const 0))
(assert_trap (invoke "l8" (i32.const 65536)) "out of bounds memory access")
(assert_return (invoke "l16" (i32.const 65534)) (i32.const 0))
(assert_trap (invoke "l16" (i32.const 65535)) "out of bounds memory access")
(assert_return (invoke "l32" (i32.const 65532)) (i32.const 0))
(assert_trap (invoke "l32" (i32.const 65533)) "out of bounds memory access")
(assert_return (invoke "l64" (i32.const 65528)) (i64.const 0))
(assert_trap (invoke "l64" (i32.const 65529)) "out of bounds memory access")
(assert_return (invoke "l64-off" (i32.const 0)) (i64.const 0))
(assert_trap (invoke "l64-off" (i32.const 1)) "out of bounds memory access")
(assert_trap (invoke "s64" (i32.const 65529)) "out of bounds memory access")
(assert_return (invoke "grow" (i32.const 1)) (i32.const 1))
;; The old end is now in bounds, the new one is the edge.
(assert_return (invoke "l64" (i32.const 65529)) (i64.const 0))
(assert_return (invoke "l64" (i32.const 131064)) (i64.const 0))
(assert_trap (invoke "l64" (i32.const 131065)) "out of bounds memory access")
(assert_return (invoke "l64-off" (i32.const 65536)) (i64.const 0))
(assert_trap (invoke "l64-off" (i32.const 65537)) "out of bounds memory access")

(module
  (memory 7 7 (pagesize 1))
  (data (i32.const 0) "\01\02\03\04\05\06\07")
  (func (export "l8") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "l32") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "size") (result i32) (memory.size))
)
(assert_return (invoke "size") (i32.const 7))
(assert_return (invoke "l8" (i32.const 6)) (i32.const 7))
(assert_trap (invoke "l8" (i32.const 7)) "out of bounds memory access")
(assert_return (invoke "l32" (i32.const 3)) (i32.const 0x07060504))
(assert_trap (invoke "l32" (i32.const 4)) "out of bounds memory access")

;; ---------------------------------------------------------------------------------------
;; The 4 GiB guard elision boundary. With 4 GiB reserved and a 2 GiB guard (the static
;; preset), an i32 index plus an offset below 2 GiB needs no check: every such address
;; faults or is in bounds. One more byte of offset and an address can land past the guard,
;; where something else may be mapped: the largest index with offsets around 2^31 must still
;; trap, as must an index + offset that crosses 2^32 (which must not wrap to a small address).
(module
  (memory 1)
  (func (export "o7ffffff8") (param i32) (result i64) (i64.load offset=0x7ffffff8 (local.get 0)))
  (func (export "o7ffffffc") (param i32) (result i32) (i32.load offset=0x7ffffffc (local.get 0)))
  (func (export "o7ffffffd") (param i32) (result i32) (i32.load offset=0x7ffffffd (local.get 0)))
  (func (export "o80000000") (param i32) (result i32) (i32.load offset=0x80000000 (local.get 0)))
  (func (export "offmax") (param i32) (result i64) (i64.load offset=0xffffffff (local.get 0)))
  (func (export "o1") (param i32) (result i32) (i32.load8_u offset=1 (local.get 0)))
)
(assert_trap (invoke "o7ffffff8" (i32.const -1)) "out of bounds memory access")
(assert_trap (invoke "o7ffffffc" (i32.const -1)) "out of bounds memory access")
(assert_trap (invoke "o7ffffffd" (i32.const -1)) "out of bounds memory access")
(assert_trap (invoke "o7ffffffd" (i32.const 0)) "out of bounds memory access")
(assert_trap (invoke "o80000000" (i32.const -1)) "out of bounds memory access")
(assert_trap (invoke "o80000000" (i32.const 0x7fffffff)) "out of bounds memory access")
(assert_trap (invoke "offmax" (i32.const -1)) "out of bounds memory access")
(assert_trap (invoke "offmax" (i32.const 1)) "out of bounds memory access")
;; 0xffff_ffff + 1 = 2^32, not 0.
(assert_trap (invoke "o1" (i32.const -1)) "out of bounds memory access")
(assert_return (invoke "o1" (i32.const 65534)) (i32.const 0))

;; memory64: the index plus the offset may carry out of 64 bits, and must trap rather than
;; wrap to a small address.
(module
  (memory i64 1)
  (data (i64.const 0) "\2a")
  (func (export "o8") (param i64) (result i64) (i64.load offset=8 (local.get 0)))
  (func (export "o1") (param i64) (result i32) (i32.load8_u offset=1 (local.get 0)))
  (func (export "omax") (param i64) (result i32)
    (i32.load8_u offset=0xffffffffffffffff (local.get 0)))
)
(assert_trap (invoke "o8" (i64.const -8)) "out of bounds memory access")
(assert_trap (invoke "o1" (i64.const -1)) "out of bounds memory access")
(assert_trap (invoke "omax" (i64.const 1)) "out of bounds memory access")
(assert_trap (invoke "omax" (i64.const 0)) "out of bounds memory access")
(assert_return (invoke "o1" (i64.const 65534)) (i32.const 0))
(assert_trap (invoke "o8" (i64.const 0x100000000)) "out of bounds memory access")
