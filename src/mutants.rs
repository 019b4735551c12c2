//! Known classes of lowering bugs, injected on purpose so that a test can show proof-carrying
//! code rejects each of them. A test-only switch: it exists only in builds with the
//! `pcc-mutants` cargo feature (no setting or command-line flag reaches it), and without
//! that feature [`active`] is a constant `false` the compiler removes.

/// A class of bounds-check miscompilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// The explicit check tests `K - 1` instead of `K` (an end-of-memory off-by-one).
    KOffByOne,
    /// An i32 index is sign-extended (x86_64) or used without its zero-extension (Pulley).
    MissingZeroExtension,
    /// The explicit check is not emitted.
    DroppedCheck,
    /// A 4-byte access is made 8 bytes wide (load sinking that widened an access).
    WiderAccess,
    /// The Spectre guard's conditional move is dropped: the unchecked address is used.
    SpectreSelectDropped,
    /// The Spectre guard selects the wrong operand: null in bounds, the address out of it.
    SpectreWrongOperand,
    /// An index shifted in 32 bits is re-shifted in 64 bits for the address (the folding
    /// of a shift into a scaled address mode, CVE-2023-26489), after the check of the
    /// 32-bit value.
    ShiftedIndexFolded,
    /// Pulley's `g32` mode is chosen without its `bound >= K` premise.
    G32WithoutPremise,
    /// A run's shared check extends across a call (keyed by memory and index only, so a
    /// base and bound reloaded after `memory.grow` join the run).
    RunAcrossCall,
    /// A covered access of a run is addressed one byte past what its leader checked.
    CoveredPastEnd,
    /// The encoder emits another access than the one proven (x86_64: the index scaled by
    /// 4, CVE-2023-26489 at the encoder; Pulley: a 4-byte load encoded 8 bytes wide), below
    /// the proof: the decoded access differs.
    EmissionDiffers,
    /// An integer reload from a spill slot is 32 bits wide: the upper half of the register
    /// is lost (CVE-2021-32629 lost an index's zero-extension in a reload).
    ReloadNarrowed,
}

impl Mutant {
    /// Every mutant.
    pub const ALL: [Mutant; 12] = [
        Mutant::KOffByOne,
        Mutant::MissingZeroExtension,
        Mutant::DroppedCheck,
        Mutant::WiderAccess,
        Mutant::SpectreSelectDropped,
        Mutant::SpectreWrongOperand,
        Mutant::ShiftedIndexFolded,
        Mutant::G32WithoutPremise,
        Mutant::RunAcrossCall,
        Mutant::CoveredPastEnd,
        Mutant::EmissionDiffers,
        Mutant::ReloadNarrowed,
    ];
}

#[cfg(feature = "pcc-mutants")]
static ACTIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

/// Whether mutant `m` is injected (never, without the `pcc-mutants` feature).
#[inline(always)]
pub fn active(m: Mutant) -> bool {
    #[cfg(feature = "pcc-mutants")]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == m as usize
    }
    #[cfg(not(feature = "pcc-mutants"))]
    {
        let _ = m;
        false
    }
}

/// Injects `m` (or none) into every later compile of this process.
#[cfg(feature = "pcc-mutants")]
pub fn set(m: Option<Mutant>) {
    ACTIVE.store(
        m.map_or(usize::MAX, |m| m as usize),
        std::sync::atomic::Ordering::Relaxed,
    );
}
