//! Backends: one folder per target with the same shape (ISLE lowering rules, machine
//! instructions, emission), on the shared machine layer in [`crate::machinst`].

pub mod pulley;
