//! The SSA builder: functions built from mutable variables verify and compute what the
//! variables say, including loops (unsealed headers), merges, undefined reads and very long
//! block chains.

use clif_bounds::frontend::{FunctionBuilder, Variable};
use clif_bounds::interpreter::{DataValue, Interpreter, Outcome};
use clif_bounds::ir::{
    types, AbiParam, Block, BlockCall, Function, InstBuilder, IntCC, Signature, Value,
};
use clif_bounds::ir_verifier::verify_function;
use cranelift_entity::EntityRef;

fn signature(params: usize, returns: usize) -> Signature {
    Signature {
        params: vec![AbiParam::new(types::I64); params],
        returns: vec![AbiParam::new(types::I64); returns],
        ..Signature::default()
    }
}

fn run(func: &Function, args: &[u64]) -> u64 {
    if let Err(e) = verify_function(func, types::I64) {
        panic!("{}\n{func}", e[0].message);
    }
    let args: Vec<DataValue> = args
        .iter()
        .map(|&a| DataValue::new(types::I64, a))
        .collect();
    match Interpreter::new([func], types::I64)
        .call(&func.name, &args)
        .unwrap()
    {
        Outcome::Returned(v) => v[0].bits,
        Outcome::Trapped(t) => panic!("trapped {}", t.code),
    }
}

/// `sum = 0; i = n; while i != 0 { sum += i; i -= 1 } return sum`
fn counting_loop() -> Function {
    let mut func = Function::new("%sum", signature(1, 1));
    let mut b = FunctionBuilder::new(&mut func);
    let (sum, i) = (Variable::new(0), Variable::new(1));
    b.declare_var(sum, types::I64);
    b.declare_var(i, types::I64);
    let entry = b.create_block();
    let header = b.create_block();
    let body = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let n = b.block_params(entry)[0];
    let zero = b.ins().iconst(types::I64, 0.into());
    b.def_var(sum, zero);
    b.def_var(i, n);
    b.ins().jump(to(header));

    b.switch_to_block(header); // not sealed: the back edge is not built yet
    let iv = b.use_var(i);
    b.ins().brif(iv, to(body), to(exit));

    b.switch_to_block(body);
    b.seal_block(body);
    let (s, iv) = (b.use_var(sum), b.use_var(i));
    let s2 = b.ins().iadd(s, iv);
    let one = b.ins().iconst(types::I64, 1.into());
    let i2 = b.ins().isub(iv, one);
    b.def_var(sum, s2);
    b.def_var(i, i2);
    b.ins().jump(to(header));
    b.seal_block(header);

    b.switch_to_block(exit);
    b.seal_block(exit);
    let s = b.use_var(sum);
    b.ins().return_(&[s]);
    b.finalize().unwrap();
    func
}

#[test]
fn loop_with_unsealed_header() {
    let f = counting_loop();
    assert_eq!(run(&f, &[100]), 5050);
    assert_eq!(run(&f, &[0]), 0);
    // The header received one parameter per variable live around the loop.
    let header = f.layout.blocks()[1];
    assert_eq!(f.dfg.block_params(header).len(), 2, "{f}");
}

#[test]
fn merge_of_two_definitions_and_undefined_reads() {
    // x = c ? 10 : 20; return x + y, where y is never defined (reads as 0).
    let mut func = Function::new("%merge", signature(1, 1));
    let mut b = FunctionBuilder::new(&mut func);
    let (x, y) = (Variable::new(0), Variable::new(1));
    b.declare_var(x, types::I64);
    b.declare_var(y, types::I64);
    let [entry, then, other, join] = [(); 4].map(|_| b.create_block());
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let c = b.block_params(entry)[0];
    b.ins().brif(c, to(then), to(other));
    for (block, value) in [(then, 10), (other, 20)] {
        b.switch_to_block(block);
        b.seal_block(block);
        let v = b.ins().iconst(types::I64, value.into());
        b.def_var(x, v);
        b.ins().jump(to(join));
    }
    b.switch_to_block(join);
    b.seal_block(join);
    let (xv, yv) = (b.use_var(x), b.use_var(y));
    let r = b.ins().iadd(xv, yv);
    b.ins().return_(&[r]);
    b.finalize().unwrap();
    assert_eq!(run(&func, &[1]), 10);
    assert_eq!(run(&func, &[0]), 20);
}

#[test]
fn long_chains_do_not_recurse() {
    // 20,000 blocks, each jumping to the next, a variable defined only at the start and used
    // only at the end; every block is sealed only at the end.
    let n = 20_000;
    let mut func = Function::new("%chain", signature(1, 1));
    let mut b = FunctionBuilder::new(&mut func);
    let x = Variable::new(0);
    b.declare_var(x, types::I64);
    let blocks: Vec<_> = (0..n).map(|_| b.create_block()).collect();
    b.append_block_params_for_function_params(blocks[0]);
    b.switch_to_block(blocks[0]);
    let p = b.block_params(blocks[0])[0];
    b.def_var(x, p);
    for w in blocks.windows(2) {
        b.switch_to_block(w[0]);
        b.ins().jump(to(w[1]));
    }
    b.switch_to_block(blocks[n - 1]);
    let v = b.use_var(x);
    b.ins().return_(&[v]);
    b.seal_all_blocks();
    b.finalize().unwrap();
    assert_eq!(run(&func, &[42]), 42);

    // And the same chain sealed as it is built: the use walks 20,000 predecessors.
    let mut func = Function::new("%chain", signature(1, 1));
    let mut b = FunctionBuilder::new(&mut func);
    b.declare_var(x, types::I64);
    let blocks: Vec<_> = (0..n).map(|_| b.create_block()).collect();
    b.append_block_params_for_function_params(blocks[0]);
    b.switch_to_block(blocks[0]);
    b.seal_block(blocks[0]);
    let p = b.block_params(blocks[0])[0];
    b.def_var(x, p);
    for w in blocks.windows(2) {
        b.switch_to_block(w[0]);
        b.ins().jump(to(w[1]));
        b.seal_block(w[1]);
    }
    b.switch_to_block(blocks[n - 1]);
    let v = b.use_var(x);
    b.ins().return_(&[v]);
    b.finalize().unwrap();
    assert_eq!(run(&func, &[7]), 7);
}

/// A branch target without arguments: the builder adds those for variables.
fn to(block: Block) -> BlockCall {
    BlockCall {
        block,
        args: vec![],
    }
}

/// Fills `header`: continue to `body` while `var < limit`, else go to `exit`.
fn loop_test(
    b: &mut FunctionBuilder,
    header: Block,
    var: Variable,
    limit: Value,
    body: Block,
    exit: Block,
) {
    b.switch_to_block(header);
    let v = b.use_var(var);
    let c = b.ins().icmp(IntCC::UnsignedLessThan, v, limit);
    b.ins().brif(c, to(body), to(exit));
}

/// `var += 1` at the builder's position.
fn increment(b: &mut FunctionBuilder, var: Variable) {
    let one = b.ins().iconst(types::I64, 1.into());
    let v = b.use_var(var);
    let next = b.ins().iadd(v, one);
    b.def_var(var, next);
}

/// `total = 0; for i in 0..L0 { for j in 0..L1 { total += 1 } } return total`. `define`
/// runs in the entry block with its parameters; `limit(b, params, k)` gives loop `k`'s limit
/// (0: outer, 1: inner) in that loop's header. Returns the function and the two headers.
fn nested(
    params: usize,
    define: impl FnOnce(&mut FunctionBuilder, &[Value]),
    limit: impl Fn(&mut FunctionBuilder, &[Value], usize) -> Value,
) -> (Function, Block, Block) {
    let mut func = Function::new("%nested", signature(params, 1));
    let mut b = FunctionBuilder::new(&mut func);
    let [total, i, j] = [0, 1, 2].map(Variable::new);
    for v in [total, i, j] {
        b.declare_var(v, types::I64);
    }
    let [entry, outer, outer_body, inner, inner_body, inner_exit, exit] =
        [(); 7].map(|_| b.create_block());
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let args = b.block_params(entry).to_vec();
    define(&mut b, &args);
    let zero = b.ins().iconst(types::I64, 0.into());
    b.def_var(total, zero);
    b.def_var(i, zero);
    b.ins().jump(to(outer));

    b.switch_to_block(outer);
    let l = limit(&mut b, &args, 0);
    loop_test(&mut b, outer, i, l, outer_body, exit);

    b.switch_to_block(outer_body);
    b.seal_block(outer_body);
    let zero = b.ins().iconst(types::I64, 0.into());
    b.def_var(j, zero);
    b.ins().jump(to(inner));

    b.switch_to_block(inner);
    let l = limit(&mut b, &args, 1);
    loop_test(&mut b, inner, j, l, inner_body, inner_exit);

    b.switch_to_block(inner_body);
    b.seal_block(inner_body);
    increment(&mut b, total);
    increment(&mut b, j);
    b.ins().jump(to(inner));
    b.seal_block(inner);

    b.switch_to_block(inner_exit);
    b.seal_block(inner_exit);
    increment(&mut b, i);
    b.ins().jump(to(outer));
    b.seal_block(outer);

    b.switch_to_block(exit);
    b.seal_block(exit);
    let t = b.use_var(total);
    b.ins().return_(&[t]);
    b.finalize().unwrap();
    (func, outer, inner)
}

#[test]
fn nested_loops() {
    let (func, _, _) = nested(2, |_, _| {}, |_, params, k| params[k]);
    assert_eq!(run(&func, &[3, 4]), 12);
    assert_eq!(run(&func, &[0, 4]), 0);
    assert_eq!(run(&func, &[5, 0]), 0);
}

#[test]
fn misuse_is_reported_not_panicked() {
    let mut func = Function::new("%bad", signature(0, 0));
    let mut b = FunctionBuilder::new(&mut func);
    let [entry, next] = [(); 2].map(|_| b.create_block());
    b.switch_to_block(entry);
    b.seal_block(entry);
    b.seal_block(next);
    b.ins().jump(to(next));
    b.switch_to_block(next);
    b.ins().return_(&[]);
    let err = b.finalize().unwrap_err();
    assert!(
        err.contains("branches to block1 after it was sealed"),
        "{err}"
    );
}

#[test]
fn variables_a_loop_never_writes_get_no_parameters() {
    // Both limits are a variable `n` set once in the entry block and read in both loop
    // headers. Construction gives it parameters whose every incoming value is one value (or
    // the parameter itself), as it does `i` in the inner loop; finalize must remove them,
    // nested ones included.
    let n = Variable::new(3);
    let (func, outer, inner) = nested(
        1,
        |b, params| {
            b.declare_var(n, types::I64);
            b.def_var(n, params[0]);
        },
        |b, _, _| b.use_var(n),
    );
    // outer: (total, i); inner: (total, j). Neither has one for `n`; inner none for `i`.
    assert_eq!(func.dfg.block_params(outer).len(), 2, "{func}");
    assert_eq!(func.dfg.block_params(inner).len(), 2, "{func}");
    assert_eq!(run(&func, &[3]), 9);
    assert_eq!(run(&func, &[0]), 0);
    assert_eq!(run(&func, &[7]), 49);
}
