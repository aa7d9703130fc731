//! Standard output for the command line, and what happens when it closes early.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe (`herald status 1 | head -1`) fails with
//! `BrokenPipe`, and std's `println!` panics on it. Restoring SIGPIPE's default is not the cure:
//! it would also apply to the gRPC sockets, whose vectored writes carry no `MSG_NOSIGNAL`, so a
//! node dying mid-call would kill the load generator silently instead of counting a failure.
//! Instead this module's `println!` and `print!` shadow std's for every module of `cli/` (they
//! are declared before them), and a failed write ends a client command quietly with the status a
//! shell gives a process killed by SIGPIPE. The node, `herald dev` and the simulators keep
//! running: their output is informational, and their work is elsewhere.
//!
//! It knows nothing of what is printed.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// The status a shell reports for a process killed by SIGPIPE (128 + 13): what `yes | head -1`
/// leaves, so scripts with `pipefail` see the same as for any other tool cut short.
const CLOSED_STDOUT_STATUS: i32 = 128 + 13;

/// Whether a failed write to standard output ends the process (client commands) or is ignored
/// (the long-running commands).
static EXIT_ON_FAILED_WRITE: AtomicBool = AtomicBool::new(true);

/// For commands that must keep running whatever becomes of their standard output.
pub fn keep_running_when_stdout_fails() {
    EXIT_ON_FAILED_WRITE.store(false, Ordering::Relaxed);
}

/// Writes `args` to standard output; see the module's paragraph for a failed write.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let result = std::io::stdout().lock().write_fmt(args);
    let Err(error) = result else {
        return;
    };
    if !EXIT_ON_FAILED_WRITE.load(Ordering::Relaxed) {
        return;
    }
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        // Whoever read the output has all they wanted: nothing to report.
        std::process::exit(CLOSED_STDOUT_STATUS);
    }
    // A full disk or a closed terminal: say so once (stderr may be gone too) and stop.
    let _ = writeln!(
        std::io::stderr(),
        "error: writing to standard output: {error}"
    );
    std::process::exit(1);
}

/// `println!` that ends a client command quietly when standard output is closed.
macro_rules! println {
    () => {
        $crate::cli::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that ends a client command quietly when standard output is closed.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!($($arg)*))
    };
}
