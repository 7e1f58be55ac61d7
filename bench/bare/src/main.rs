//! `bench-bare --host H --port P --database-dsn FILE`: serves [`bench_bare::app`] with
//! `axum::serve`, the plain server a bare app uses.

use axum::serve::ListenerExt;

struct Args {
    host: String,
    port: u16,
    database: String,
}

/// `--host H --port P --database-dsn FILE`, the flags bench-app (burrow) takes too.
fn args() -> Result<Args, String> {
    let mut args = Args { host: "127.0.0.1".into(), port: 8080, database: "bare.db".into() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => args.host = value,
            "--port" => args.port = value.parse().map_err(|_| format!("bad port {value}"))?,
            "--database-dsn" => args.database = value,
            _ => return Err(format!("unknown flag {flag} (--host, --port, --database-dsn)")),
        }
    }
    Ok(args)
}

fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-bare: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn start() -> Result<(), String> {
    let args = args()?;
    let app = bench_bare::app(&args.database, format!("{}:{}", args.host, args.port))?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    // As burrow's accept loop: responses go out without waiting for Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
