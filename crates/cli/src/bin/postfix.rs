fn main() {
    // No fastbins in glibc's malloc: with them, every allocation of 1 KB
    // or more (and every free of 64 KB or more) first consolidates all
    // the small chunks freed since (malloc_consolidate), which the mail
    // system's many short-lived allocations per message made a steady
    // cost; the per-thread cache still serves small sizes. bench/ab: +4%
    // messages/s and -6% CPU per message at 10 sessions (two runs).
    // SAFETY: mallopt is MT-unsafe; this runs before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
    std::process::exit(rostfix_cli::postfix::main());
}
