//! The rules on the shapes lowering produces, and the off-by-one versions each must reject.

use super::*;

const BASE: Value = 1;
const BOUND: Value = 2;
const INDEX: Value = 3;

/// A dynamic memory: bound in `[0x10000, 0x1_0000_0000]`, no guard.
fn dynamic(guard: u64, faults_trap: bool) -> Checker {
    Checker::new(Declarations {
        regions: vec![Region {
            memory: MemoryType {
                min: 0x10000,
                max: 1 << 32,
                least_faulting_end: 0x10000 + u128::from(guard),
                guard,
                may_move: true,
            },
            base: BASE,
            bound: BOUND,
            bound_const: None,
        }],
        fields: vec![],
        structs: vec![],
        null_reach: 4096,
        faults_trap,
    })
}

fn ugt(a: Value, b: Operand) -> Cmp {
    Cmp {
        cc: Cc::Ugt,
        a: Operand::Value(a),
        b,
        bits: 64,
    }
}

fn at(base: Value, index: Option<Value>, disp: i64) -> Address {
    Address { base, index, disp }
}

#[test]
fn bound_minus_k_check_proves_the_access_and_not_one_byte_more() {
    // bk = bound - 8; trap if index > bk; load 4 bytes at base + index + 4.
    for (disp, width, ok) in [(4, 4, true), (5, 4, false), (4, 5, false), (0, 8, true)] {
        let mut c = dynamic(0, true);
        c.define(INDEX, Fact::bits(32));
        c.sub_imm(10, BOUND, 8, 64);
        c.assume(ugt(INDEX, Operand::Value(10)), false);
        let r = c.access(at(BASE, Some(INDEX), disp), width, true, false);
        assert_eq!(r.is_ok(), ok, "disp {disp} width {width}: {r:?}");
    }
}

#[test]
fn a_sum_checked_against_the_bound_bounds_its_index() {
    // end = index + 8 (exact: overflow traps); trap if end > bound; access [index, +8).
    let mut c = dynamic(0, true);
    c.define(INDEX, Fact::ANY);
    c.add(11, INDEX, Operand::Imm(8), 64, true);
    c.assume(ugt(11, Operand::Value(BOUND)), false);
    assert_eq!(
        c.access(at(BASE, Some(INDEX), 0), 8, true, false),
        Ok(Proof::Accessible)
    );
    assert!(c.access(at(BASE, Some(INDEX), 1), 8, true, false).is_err());
}

#[test]
fn a_sum_that_may_wrap_proves_nothing() {
    let mut c = dynamic(0, true);
    c.define(INDEX, Fact::ANY);
    c.add(11, INDEX, Operand::Imm(8), 64, false);
    c.assume(ugt(11, Operand::Value(BOUND)), false);
    assert!(c.access(at(BASE, Some(INDEX), 0), 8, true, false).is_err());
}

#[test]
fn the_spectre_select_is_in_bounds_or_null_within_the_null_page() {
    let mut c = dynamic(0, true);
    c.define(INDEX, Fact::bits(32));
    c.sub_imm(10, BOUND, 8, 64);
    c.add(12, BASE, Operand::Value(INDEX), 64, false);
    c.constant(13, 0);
    let oob = ugt(INDEX, Operand::Value(10));
    c.select(14, oob, 13, 12);
    assert_eq!(
        c.access(at(14, None, 0), 8, true, false),
        Ok(Proof::Accessible)
    );
    // Not a trap site: the null case would crash the host.
    assert!(c.access(at(14, None, 0), 8, false, false).is_err());
    // Past the null page.
    assert!(c.access(at(14, None, 4096), 1, true, false).is_err());
    // The operands swapped: the address survives exactly when out of bounds.
    c.select(15, oob, 12, 13);
    assert!(c.access(at(15, None, 0), 8, true, false).is_err());
}

#[test]
fn pulley_z_mode_tests_an_exact_null_only() {
    let mut c = dynamic(0, false);
    c.define(INDEX, Fact::bits(32));
    c.sub_imm(10, BOUND, 8, 64);
    c.add(12, BASE, Operand::Value(INDEX), 64, false);
    c.constant(13, 0);
    c.compare(16, ugt(INDEX, Operand::Value(10)));
    c.select_on(14, 16, 13, 12);
    assert_eq!(
        c.access(at(14, None, 0), 8, true, true),
        Ok(Proof::Accessible)
    );
    // Without the null test, nothing faults on Pulley.
    assert!(c.access(at(14, None, 0), 8, true, false).is_err());
    // A null plus something is not what `_z` tests.
    c.add(17, 14, Operand::Imm(4), 64, false);
    assert!(c.access(at(17, None, 0), 4, true, true).is_err());
}

#[test]
fn a_guard_covers_a_32_bit_index_only_when_it_is_big_enough() {
    let c = Checker::new(Declarations {
        regions: vec![Region {
            memory: MemoryType {
                min: 0,
                max: 1 << 32,
                least_faulting_end: (1 << 32) + 0x8000_0000,
                guard: 0x8000_0000,
                may_move: false,
            },
            base: BASE,
            bound: BOUND,
            bound_const: None,
        }],
        fields: vec![],
        structs: vec![],
        null_reach: 4096,
        faults_trap: true,
    });
    let mut c = c;
    c.define(INDEX, Fact::bits(32));
    let a = |disp| at(BASE, Some(INDEX), disp);
    assert_eq!(
        c.access(a(0x7fff_fff9), 8, true, false),
        Ok(Proof::AccessibleOrFaults)
    );
    assert!(c.access(a(0x7fff_fffa), 8, true, false).is_err());
    // Not a trap site.
    assert!(c.access(a(0), 8, false, false).is_err());
    // An index of unknown width (a missing zero-extension).
    c.define(20, Fact::ANY);
    assert!(c.access(at(BASE, Some(20), 0), 1, true, false).is_err());
}

#[test]
fn g32_needs_its_bound_at_least_offset_plus_size() {
    let mut c = dynamic(0, false);
    c.define(INDEX, Fact::ANY);
    assert_eq!(c.g32(BASE, BOUND, INDEX, 8, 8), Ok(Proof::Accessible));
    // min is 0x10000: an offset of 0xfff8 plus 8 is the most g32 may rely on.
    assert!(c.g32(BASE, BOUND, INDEX, 0xfff8, 8).is_ok());
    assert!(c.g32(BASE, BOUND, INDEX, 0xfff9, 8).is_err());
}

#[test]
fn g32_with_a_rebased_base_and_bound() {
    let mut c = dynamic(0, false);
    c.define(INDEX, Fact::ANY);
    c.add(30, BASE, Operand::Imm(0x8000), 64, false);
    c.sub_imm(31, BOUND, 0x8000, 64);
    assert!(c.g32(30, 31, INDEX, 0x10, 4).is_ok());
    // The bound rebased, the base not: the access would reach 0x8000 bytes too far.
    assert!(c.g32(BASE, 31, INDEX, 0x10, 4).is_ok());
    assert!(c.g32(30, BOUND, INDEX, 0x10, 4).is_err());
}

#[test]
fn a_constant_bound_check_proves_within_the_minimum() {
    let mut c = dynamic(0, true);
    c.define(INDEX, Fact::bits(32));
    c.assume(ugt(INDEX, Operand::Imm(0xfff8)), false);
    assert!(c.access(at(BASE, Some(INDEX), 0), 8, false, false).is_ok());
    assert!(c.access(at(BASE, Some(INDEX), 1), 8, false, false).is_err());
}

#[test]
fn assumptions_end_with_their_scope() {
    let mut c = dynamic(0, true);
    c.define(INDEX, Fact::bits(32));
    let m = c.mark();
    c.assume(ugt(INDEX, Operand::Imm(0x100)), false);
    assert!(c.access(at(BASE, Some(INDEX), 0), 1, false, false).is_ok());
    c.undo(m);
    assert!(c.access(at(BASE, Some(INDEX), 0), 1, false, false).is_err());
}

#[test]
fn a_32_bit_comparison_of_a_64_bit_value_proves_nothing() {
    let mut c = dynamic(0, true);
    c.define(INDEX, Fact::ANY);
    c.assume(
        Cmp {
            cc: Cc::Ugt,
            a: Operand::Value(INDEX),
            b: Operand::Imm(0x100),
            bits: 32,
        },
        false,
    );
    assert!(c.access(at(BASE, Some(INDEX), 0), 1, false, false).is_err());
}

#[test]
fn a_base_of_a_memory_that_may_move_is_stale_after_a_call() {
    let mut c = dynamic(0, true);
    c.param(BASE, Fact::ANY);
    c.define(INDEX, Fact::bits(32));
    c.sub_imm(10, BOUND, 8, 64);
    c.assume(ugt(INDEX, Operand::Value(10)), false);
    assert!(c.access(at(BASE, Some(INDEX), 0), 8, true, false).is_ok());
    c.call();
    let e = c
        .access(at(BASE, Some(INDEX), 0), 8, true, false)
        .unwrap_err();
    assert!(e.needed.contains("may move"), "{e}");
    // A block no call reaches after the base's load.
    c.set_stale([]);
    assert!(c.access(at(BASE, Some(INDEX), 0), 8, true, false).is_ok());
    assert!(c.take_violation().is_none());
}

#[test]
fn a_declared_base_or_bound_is_defined_only_as_declared() {
    let field = Field {
        addr: 9,
        offset: 8,
        holds: BOUND,
        readonly: false,
        at: (0, 0),
    };
    let decls = |bound_const| Declarations {
        regions: vec![Region {
            memory: MemoryType {
                min: 0x10000,
                max: 1 << 32,
                least_faulting_end: 0x10000,
                guard: 0,
                may_move: true,
            },
            base: BASE,
            bound: BOUND,
            bound_const,
        }],
        fields: vec![field],
        ..Declarations::default()
    };
    let load = |disp| Address {
        base: 9,
        index: None,
        disp,
    };
    // Read whole from its field: fine.
    let mut c = Checker::new(decls(None));
    c.read_into(BOUND, load(8), 8);
    c.define(BOUND, Fact::ANY);
    assert!(c.take_violation().is_none());
    // From the next field, or only its low half: not the bound.
    for (disp, width) in [(16, 8), (8, 4)] {
        let mut c = Checker::new(decls(None));
        c.read_into(BOUND, load(disp), width);
        c.define(BOUND, Fact::ANY);
        assert!(c.take_violation().is_some(), "{disp} {width}");
    }
    // A constant bound, materialised as its constant or as another.
    let mut c = Checker::new(decls(Some(0x20000)));
    c.constant(BOUND, 0x20000);
    assert!(c.take_violation().is_none());
    let mut c = Checker::new(decls(Some(0x20000)));
    c.constant(BOUND, 0x20001);
    assert!(c.take_violation().is_some());
    // Stores into the field that holds the bound.
    let c = Checker::new(Declarations {
        structs: vec![(9, 32)],
        ..decls(None)
    });
    assert!(c.write(load(12), 4).is_err());
    assert!(c.write(load(16), 8).is_ok());
}

#[test]
fn a_value_is_defined_once() {
    let mut c = dynamic(0, true);
    c.define(20, Fact::bits(8));
    assert!(c.take_violation().is_none());
    c.define(20, Fact::ANY);
    assert!(c.take_violation().is_some());
}

#[test]
fn an_8_bit_comparison_bounds_nothing_wider() {
    let mut c = dynamic(0, true);
    c.define(INDEX, Fact::ANY);
    c.assume(
        Cmp {
            cc: Cc::Ugt,
            a: Operand::Value(INDEX),
            b: Operand::Imm(15),
            bits: 8,
        },
        false,
    );
    c.zero_extend(21, INDEX, 32);
    assert_eq!(c.fact(21), Fact::bits(32));
}

#[test]
fn a_field_that_calls_change_is_read_by_its_holder_at_that_point() {
    let region = |base, bound| Region {
        memory: MemoryType {
            min: 0x10000,
            max: 1 << 32,
            least_faulting_end: 0x10000,
            guard: 0,
            may_move: true,
        },
        base,
        bound,
        bound_const: None,
    };
    let field = |holds, calls| Field {
        addr: 9,
        offset: 8,
        holds,
        readonly: false,
        at: (0, calls),
    };
    let mut c = Checker::new(Declarations {
        regions: vec![region(1, 2), region(5, 6)],
        fields: vec![field(2, 0), field(6, 1)],
        structs: vec![],
        null_reach: 0,
        faults_trap: false,
    });
    c.enter_block(0);
    assert_eq!(c.field(9, 8).map(|f| f.holds), Some(2));
    c.call();
    assert_eq!(c.field(9, 8).map(|f| f.holds), Some(6));
    c.call();
    // Neither holder is read after a second call.
    assert_eq!(c.field(9, 8), None);
}

#[test]
fn a_struct_admits_exactly_its_bytes() {
    let mut c = Checker::new(Declarations {
        structs: vec![(7, 24)],
        ..Declarations::default()
    });
    assert_eq!(c.access(at(7, None, 16), 8, false, false), Ok(Proof::Field));
    assert!(c.access(at(7, None, 17), 8, false, false).is_err());
    // A table slot: index <= 1 after its check, scaled by 8.
    c.define(8, Fact::ANY);
    c.assume(ugt(8, Operand::Imm(1)), false);
    c.shl_imm(9, 8, 3, 64);
    assert_eq!(
        c.access(at(7, Some(9), 8), 8, false, false),
        Ok(Proof::Field)
    );
    assert!(c.access(at(7, Some(9), 9), 8, false, false).is_err());
}

/// A memory of `min 0, max 0` whose bound is the constant 0, no guard, with x86_64's
/// faulting null page.
fn zero_bound() -> Declarations {
    Declarations {
        regions: vec![Region {
            memory: MemoryType {
                min: 0,
                max: 0,
                least_faulting_end: 0,
                guard: 0,
                may_move: false,
            },
            base: BASE,
            bound: BOUND,
            bound_const: Some(0),
        }],
        null_reach: 4096,
        faults_trap: true,
        ..Declarations::default()
    }
}

/// A memory whose bound is the constant 0 (`min 0, max 0`): every access fails its check, so
/// the access after the check never runs and is proven unreachable, whatever the index's
/// fact (here a condition, which says nothing beyond its low bit); the same access after a
/// check that can pass is still rejected.
#[test]
fn an_access_after_a_check_that_always_fails_is_unreachable() {
    const ONE: Value = 7;
    const END: Value = 8;
    for (one, unreachable) in [(1, true), (0, false)] {
        let mut c = Checker::new(zero_bound());
        c.constant(BOUND, 0);
        c.compare(INDEX, ugt(20, Operand::Imm(3)));
        c.constant(ONE, one);
        // end = index + one, trapping on overflow; trap if bound < end.
        c.add(END, INDEX, Operand::Value(ONE), 64, true);
        let m = c.mark();
        c.assume(
            Cmp {
                cc: Cc::Ult,
                a: Operand::Value(BOUND),
                b: Operand::Value(END),
                bits: 64,
            },
            false,
        );
        let r = c.access(at(BASE, Some(INDEX), 0), 1, true, false);
        assert_eq!(
            r.as_ref().is_ok_and(|p| *p == Proof::NeverAccesses),
            unreachable,
            "{r:?}"
        );
        // Out of the check's scope, the access is reachable and out of bounds.
        c.undo(m);
        assert!(c.access(at(BASE, Some(INDEX), 0), 1, true, false).is_err());
    }
}

/// A Spectre guard `cmp ? null : base + index` whose "in bounds" arm no values satisfy is
/// always null: on Pulley's null-trapping modes it never accesses; on x86_64 it is in the
/// null page, which faults at a trap site and only there. Both arms feasible, the join is
/// checked as before.
#[test]
fn a_select_with_an_infeasible_arm_is_its_other_arm() {
    const NULL: Value = 9;
    const ADDR: Value = 10;
    const PTR: Value = 11;
    const END: Value = 12;
    const ONE: Value = 13;
    let mut c = Checker::new(zero_bound());
    c.constant(BOUND, 0);
    c.define(INDEX, Fact::bits(8));
    c.constant(ONE, 1);
    c.add(END, INDEX, Operand::Value(ONE), 64, true);
    c.constant(NULL, 0);
    c.add(ADDR, BASE, Operand::Value(INDEX), 64, false);
    // ptr = bound < end ? null : addr; `bound < end` always holds.
    let oob = Cmp {
        cc: Cc::Ult,
        a: Operand::Value(BOUND),
        b: Operand::Value(END),
        bits: 64,
    };
    c.select(PTR, oob, NULL, ADDR);
    assert_eq!(c.fact(PTR), Fact::constant(0));
    assert_eq!(
        c.access(at(PTR, None, 0), 1, true, true),
        Ok(Proof::NeverAccesses)
    );
    assert_eq!(
        c.access(at(PTR, None, 0), 1, true, false),
        Ok(Proof::NeverAccesses)
    );
    // Not at a trap site, or past the null page: nothing proves it.
    assert!(c.access(at(PTR, None, 0), 1, false, false).is_err());
    assert!(c.access(at(PTR, None, 4096), 1, true, false).is_err());
}

/// Code after an unconditional trap never runs, up to the end of its scope.
#[test]
fn nothing_after_an_unconditional_trap_is_checked() {
    let mut c = dynamic(0, true);
    c.define(INDEX, Fact::ANY);
    let wild = at(BASE, Some(INDEX), 0);
    assert!(c.access(wild, 8, true, false).is_err());
    let m = c.mark();
    c.never_continues();
    assert!(c.never_runs());
    assert_eq!(c.access(wild, 8, true, false), Ok(Proof::NeverAccesses));
    c.undo(m);
    assert!(!c.never_runs());
    assert!(c.access(wild, 8, true, false).is_err());
}

/// A condition zero-extended from 8 bits is at most 255 as an integer, and a sum with it is
/// bounded accordingly; unextended, it says nothing beyond its low bit.
#[test]
fn a_zero_extended_condition_is_a_bounded_integer() {
    let mut c = dynamic(0, true);
    c.compare(20, ugt(21, Operand::Imm(3)));
    c.zero_extend(22, 20, 8);
    assert!(fits(&c.fact(22), 8));
    assert!(!fits(&c.fact(20), 32));
    c.add(23, 22, Operand::Imm(8), 64, false);
    assert!(matches!(c.fact(23), Fact::Int { hi: 263, .. }));
    // The base plus it is within the region's minimum size: in bounds.
    assert_eq!(
        c.access(at(BASE, Some(22), 0), 4, false, false),
        Ok(Proof::Accessible)
    );
}
