//! `spots-signal`: a command-line party for interop testing and debugging of the SPOTS Signal
//! core. Run without arguments for the usage. Output is one JSON object on stdout; failures
//! print `{"error": ...}` and exit non-zero (1 for protocol errors, 2 for usage errors).

mod spots_signal_cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match spots_signal_cli::run(&args) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("{}", error.to_json());
            if error.class.is_none() {
                eprintln!("{}", error.message);
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
