//! xen_exporter: flags, logging, runtime; everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use xen_exporter::app::{self, cli::Cli, logging};

fn main() -> ExitCode {
    app::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("xen_exporter")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::from(app::EXIT_FAILURE);
        }
    };
    runtime.block_on(app::run(cli))
}
