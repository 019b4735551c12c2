;; Linking between instances: calls to imported functions (through the host), traps that
;; cross instances, function references shared in tables, globals and re-exports, memories
;; and tables grown by one instance and seen by another, and the spectest host functions.

(module $A
  (memory (export "mem") 1 4)
  (table $t (export "tab") 4 8 funcref)
  (global (export "seven") funcref (ref.func $seven))
  (elem (table $t) (i32.const 0) func $seven $add)
  (func $seven (export "seven_fn") (result i32) (i32.const 7))
  (func $add (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
  ;; Many parameters of both kinds and several results cross the host's call area.
  (func (export "mix") (param i32 i64 f32 f64 i32 i64 f32 f64) (result f64 i64 i32)
    (f64.add (f64.add (f64.promote_f32 (local.get 2)) (local.get 3))
             (f64.add (f64.promote_f32 (local.get 6)) (local.get 7)))
    (i64.add (local.get 1) (local.get 5))
    (i32.add (local.get 0) (local.get 4)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0)))
)
(register "A" $A)

(module $B
  (import "A" "add" (func $add (param i32 i32) (result i32)))
  (import "A" "mix" (func $mix (param i32 i64 f32 f64 i32 i64 f32 f64) (result f64 i64 i32)))
  (import "A" "div" (func $div (param i32 i32) (result i32)))
  (import "A" "load" (func $load (param i32) (result i32)))
  (import "A" "grow" (func $grow (param i32) (result i32)))
  (import "A" "call" (func $a_call (param i32) (result i32)))
  (import "A" "seven" (global $seven funcref))
  (import "A" "mem" (memory 1 4))
  (import "A" "tab" (table $t 4 8 funcref))
  (import "spectest" "print_i32" (func $print (param i32)))
  (export "add_again" (func $add))
  (func $nine (result i32) (i32.const 9))
  (func $mine (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
  (elem declare func $nine $mine)
  (func (export "add") (param i32 i32) (result i32)
    (call $print (local.get 0))
    (call $add (local.get 0) (local.get 1)))
  (func (export "mix") (result f64 i64 i32)
    (call $mix (i32.const 1) (i64.const 2) (f32.const 0.5) (f64.const 0.25)
               (i32.const 3) (i64.const 4) (f32.const 1.5) (f64.const 2.75)))
  (func (export "div") (param i32 i32) (result i32) (call $div (local.get 0) (local.get 1)))
  ;; A trap in A ends B's call with A's trap, and B's code after the call never runs.
  (func (export "div_then_store") (param i32) (result i32)
    (drop (call $div (i32.const 1) (local.get 0)))
    (i32.store (i32.const 0) (i32.const 99))
    (i32.const 0))
  (func (export "load") (param i32) (result i32) (call $load (local.get 0)))
  ;; A grows the shared memory; B sees the new size and stores into the new page.
  (func (export "grow_and_store") (result i32)
    (drop (call $grow (i32.const 1)))
    (i32.store (i32.const 65536) (i32.const 42))
    (i32.add (memory.size) (i32.load (i32.const 65536))))
  ;; B calls A's functions through the table they share, and puts its own there for A.
  (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0)))
  (func (export "call_add") (param i32 i32 i32) (result i32)
    (call_indirect (param i32 i32) (result i32) (local.get 0) (local.get 1) (local.get 2)))
  (func (export "share") (table.set $t (i32.const 2) (ref.func $nine))
                         (table.set $t (i32.const 3) (ref.func $mine)))
  (func (export "seven_from_global") (result i32)
    (table.set $t (i32.const 2) (global.get $seven))
    (call_indirect (result i32) (i32.const 2)))
  (func (export "grow_table") (result i32) (table.grow $t (ref.func $nine) (i32.const 2)))
  (func (export "size") (result i32) (table.size $t))
  (func (export "a_call") (param i32) (result i32) (call $a_call (local.get 0)))
)

(assert_return (invoke $B "add" (i32.const 2) (i32.const 40)) (i32.const 42))
(assert_return (invoke $B "add_again" (i32.const 5) (i32.const 6)) (i32.const 11))
(assert_return (invoke $B "mix") (f64.const 5.0) (i64.const 6) (i32.const 4))
(assert_return (invoke $B "div" (i32.const 9) (i32.const 2)) (i32.const 4))
(assert_trap (invoke $B "div" (i32.const 1) (i32.const 0)) "integer divide by zero")
(assert_trap (invoke $B "div" (i32.const 0x80000000) (i32.const -1)) "integer overflow")
(assert_trap (invoke $B "div_then_store" (i32.const 0)) "integer divide by zero")
(assert_return (invoke $A "load" (i32.const 0)) (i32.const 0))
(assert_trap (invoke $B "load" (i32.const 65536)) "out of bounds memory access")
(assert_return (invoke $B "grow_and_store") (i32.const 44))
(assert_return (invoke $A "load" (i32.const 65536)) (i32.const 42))
(assert_return (invoke $B "call" (i32.const 0)) (i32.const 7))
(assert_return (invoke $B "call_add" (i32.const 5) (i32.const 6) (i32.const 1)) (i32.const 11))
(assert_trap (invoke $B "call" (i32.const 1)) "indirect call type mismatch")
(assert_trap (invoke $B "call" (i32.const 2)) "uninitialized element")
(assert_trap (invoke $A "call" (i32.const 2)) "uninitialized element")
(assert_trap (invoke $B "call" (i32.const 8)) "undefined element")
(invoke $B "share")
(assert_return (invoke $A "call" (i32.const 2)) (i32.const 9))
(assert_return (invoke $B "call" (i32.const 2)) (i32.const 9))
(assert_trap (invoke $A "call" (i32.const 3)) "indirect call type mismatch")
(assert_return (invoke $B "seven_from_global") (i32.const 7))
(assert_return (invoke $B "grow_table") (i32.const 4))
(assert_return (invoke $B "size") (i32.const 6))
(assert_return (invoke $A "call" (i32.const 5)) (i32.const 9))
(assert_return (invoke $B "a_call" (i32.const 5)) (i32.const 9))
(assert_return (invoke $B "grow_table") (i32.const 6))
(assert_return (invoke $B "grow_table") (i32.const -1))

;; Unlinkable: a function import of the wrong type, a table smaller than the import asks.
(assert_unlinkable
  (module (import "A" "add" (func (param i32) (result i32))))
  "incompatible import type")
(assert_unlinkable
  (module (import "A" "tab" (table 9 funcref)))
  "incompatible import type")
(assert_unlinkable
  (module (import "A" "tab" (global i32)))
  "incompatible import type")

;; A start function whose import traps makes instantiation trap with that trap.
(assert_trap
  (module
    (import "A" "div" (func $div (param i32 i32) (result i32)))
    (func $start (drop (call $div (i32.const 1) (i32.const 0))))
    (start $start))
  "integer divide by zero")

;; Mutable globals shared between instances: each lives in a cell of its own (a memory of one
;; 8-byte page) that both instances access, so a write by either is what the other reads.
(module $GA
  (global $g (export "g") (mut i32) (i32.const 5))
  (global $h (export "h") (mut f64) (f64.const 1.5))
  (global $k (export "k") i64 (i64.const 9))
  (func (export "get") (result i32) (global.get $g))
  (func (export "set") (param i32) (global.set $g (local.get 0)))
  (func (export "bump_h") (global.set $h (f64.add (global.get $h) (f64.const 1)))))
(register "GA" $GA)
(module $GB
  (import "GA" "g" (global $g (mut i32)))
  (import "GA" "h" (global $h (mut f64)))
  (import "GA" "k" (global $k i64))
  (global $own (mut i32) (i32.const 100))
  (func (export "get") (result i32) (global.get $g))
  (func (export "set") (param i32) (global.set $g (local.get 0)))
  (func (export "h") (result f64) (global.get $h))
  (func (export "k") (result i64) (global.get $k))
  (func (export "own") (result i32) (global.set $own (i32.add (global.get $own) (i32.const 1))) (global.get $own)))
(assert_return (invoke $GB "get") (i32.const 5))
(invoke $GB "set" (i32.const 42))
(assert_return (invoke $GA "get") (i32.const 42))
(assert_return (get $GA "g") (i32.const 42))
(invoke $GA "set" (i32.const -7))
(assert_return (invoke $GB "get") (i32.const -7))
(invoke $GA "bump_h")
(assert_return (invoke $GB "h") (f64.const 2.5))
(assert_return (invoke $GB "k") (i64.const 9))
(assert_return (invoke $GB "own") (i32.const 101))
(assert_unlinkable (module (import "GA" "g" (global i32))) "incompatible import type")
(assert_unlinkable (module (import "GA" "k" (global (mut i64)))) "incompatible import type")
(assert_unlinkable (module (import "GA" "g" (global (mut i64)))) "incompatible import type")

;; Recursion between instances through a shared table: each call to the other instance goes
;; through the host, so deep recursion ends in "call stack exhausted", not in a crash.
(module $RA
  (table (export "t") 2 funcref)
  (elem (i32.const 0) $a)
  (func $a (export "a") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (i32.add (i32.const 1)
        (call_indirect (param i32) (result i32) (i32.sub (local.get 0) (i32.const 1)) (i32.const 1)))))))
(register "RA" $RA)
(module $RB
  (import "RA" "t" (table 2 funcref))
  (elem (i32.const 1) $b)
  (func $b (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (i32.add (i32.const 1)
        (call_indirect (param i32) (result i32) (i32.sub (local.get 0) (i32.const 1)) (i32.const 0)))))))
(assert_return (invoke $RA "a" (i32.const 30)) (i32.const 30))
(assert_exhaustion (invoke $RA "a" (i32.const 100000)) "call stack exhausted")

;; A table re-exported by an importer keeps its own type: the import below matches the
;; table's maximum of 8, not the looser type the re-exporter imported it as.
(module $C (import "A" "tab" (table $t 4 funcref)) (export "tab" (table $t)))
(register "C" $C)
(module $D (import "C" "tab" (table 4 8 funcref)))
(assert_unlinkable (module (import "C" "tab" (table 4 7 funcref))) "incompatible import type")

;; More unlinkable imports: an unknown name, a host function of another type, another
;; element type, and a mutable global the host only has as an immutable one.
(assert_unlinkable (module (import "A" "nope" (func))) "unknown import")
(assert_unlinkable
  (module (import "spectest" "print_i32" (func (param i64))))
  "incompatible import type")
(assert_unlinkable (module (import "A" "tab" (table 4 externref))) "incompatible import type")
(assert_unlinkable
  (module (import "spectest" "global_i32" (global (mut i32))))
  "incompatible import type")

;; The spectest host functions take their arguments and return nothing.
(module
  (import "spectest" "print_f32" (func $f32 (param f32)))
  (import "spectest" "print_f64_f64" (func $f64 (param f64 f64)))
  (import "spectest" "print" (func $p))
  (func (export "print") (result i32)
    (call $f32 (f32.const 1.5)) (call $f64 (f64.const 2.5) (f64.const -0.0)) (call $p)
    (i32.const 3)))
(assert_return (invoke "print") (i32.const 3))
