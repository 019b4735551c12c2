//! Runs every file under `tests/filetests` (the same runner as `clif-bounds test`).

use std::path::PathBuf;

#[test]
fn filetests() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/filetests");
    let summary = clif_bounds::filetest::run_paths(&[dir], false);
    for (path, why) in &summary.failures {
        eprintln!("FAIL {}: {why}", path.display());
    }
    println!("filetests: {}", summary.closing_line());
    assert!(summary.failures.is_empty(), "{}", summary.closing_line());
    assert!(
        summary.passed >= 150,
        "only {} filetests ran; the suite promises at least 150",
        summary.passed
    );
}
