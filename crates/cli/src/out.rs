//! Writing to stdout and stderr. `println!` and `eprintln!` panic when the reader has gone
//! (`| head`, `| grep -m1`): a training run piped to `grep -m1 epoch` died after its first epoch
//! with "panicked ... Broken pipe". Here a reader that has gone is nobody's failure: the work goes
//! on to its end, files and exit status as without the pipe. Any other error writing a result
//! to stdout (a full disk under `> results.txt`) ends the command with a reason.

use anyhow::Context;
use std::io::ErrorKind;

/// `writeln!` to stdout; a closed pipe is ignored, any other error returned with `?`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::out::stdout_result(writeln!(std::io::stdout().lock(), $($arg)*))?
    }};
}

/// `write!` to stdout, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::out::stdout_result(write!(std::io::stdout().lock(), $($arg)*))?
    }};
}

/// `writeln!` to stderr; if stderr cannot be written there is nobody left to tell.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub(crate) use {errln, out, outln};

pub fn stdout_result(written: std::io::Result<()>) -> anyhow::Result<()> {
    match written {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// A file name for a line of text: control characters and bytes that are not UTF-8 written
/// `\xNN` ([`gc_classify::inputs::path_shown`]), so that one message stays one line.
pub fn shown(path: impl AsRef<std::ffi::OsStr>) -> String {
    gc_classify::inputs::path_shown(path.as_ref())
}
