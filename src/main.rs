//! The `resq` binary: logging, then [`resq::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`resq check ... | head -2`) ends the process
    // quietly, as for any Unix tool, instead of a panic on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .init();
    match resq::cli::run(resq::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
