//! `burrow`: starts a Burrow project (`burrow new NAME`) and adds apps to one (`burrow
//! generate app NAME`). The files it writes are the folders under `template/`, compiled in;
//! docs/guide/new-project.md describes them.
//!
//! A mistake (a bad name, a folder that is already there, no project) is one line on
//! stderr and exit code 2, with nothing written: every check runs before the first file.

mod names;
mod scaffold;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command, value_parser};

use names::Names;
use scaffold::FileOut;

/// The crate this binary was built beside, the default `burrow` dependency of new projects:
/// a CLI installed from a checkout makes projects that build against that checkout.
const BURROW_BESIDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../burrow");

/// The dependency when that crate is not there any more (the CLI was copied elsewhere).
const BURROW_VERSION: &str = "0.1";

/// A failure to report: one line, exit code 2.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(error.to_string())
    }
}

fn cli() -> Command {
    let new = Command::new("new")
        .about("Write a new project: one app, its migration, a page, a form and a test")
        .arg(
            Arg::new("name")
                .value_name("NAME")
                .required(true)
                .help("The project's name: its crate, its binary and its first app"),
        )
        .arg(
            Arg::new("path")
                .long("path")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .help("The project's folder [default: ./NAME]; it must not exist or be empty"),
        )
        .arg(
            Arg::new("burrow-path")
                .long("burrow-path")
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .help(
                    "The burrow crate the project depends on [default: the one this command \
                     was built from, else burrow 0.1 from crates.io]",
                ),
        );
    let app = Command::new("app")
        .about("Add an app (src/NAME/) to the project around the current folder")
        .arg(Arg::new("name").value_name("NAME").required(true).help("The app's name"));
    Command::new("burrow")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Start a Burrow project, or add an app to one")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(new)
        .subcommand(
            Command::new("generate")
                .about("Add to the project around the current folder")
                .subcommand_required(true)
                .subcommand(app),
        )
}

fn main() -> ExitCode {
    let matches = cli().get_matches();
    let result = match matches.subcommand() {
        Some(("new", args)) => new(args),
        Some(("generate", args)) => match args.subcommand() {
            Some(("app", args)) => generate_app(args),
            _ => unreachable!("clap requires a subcommand"),
        },
        _ => unreachable!("clap requires a subcommand"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("burrow: error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Where a new project gets Burrow from, as the TOML keys of its `burrow = { … }` and
/// `burrow-test = { … }` dependencies (the test client is a crate beside `burrow`).
struct BurrowSource {
    burrow: String,
    burrow_test: String,
}

fn burrow_source(given: Option<&PathBuf>) -> Result<BurrowSource, Failure> {
    let path = match given {
        Some(path) => {
            let found =
                path.join("Cargo.toml").is_file().then(|| path.canonicalize()).transpose()?;
            found.ok_or_else(|| {
                Failure(format!("--burrow-path {}: no Cargo.toml there", path.display()))
            })?
        }
        None => match Path::new(BURROW_BESIDE).canonicalize() {
            Ok(path) if path.join("Cargo.toml").is_file() => path,
            _ => {
                let version = format!("version = \"{BURROW_VERSION}\"");
                return Ok(BurrowSource { burrow: version.clone(), burrow_test: version });
            }
        },
    };
    let test = path.with_file_name("burrow-test");
    if !test.join("Cargo.toml").is_file() {
        let shown = test.display();
        return Err(Failure(format!("--burrow-path: no burrow-test crate beside it ({shown})")));
    }
    Ok(BurrowSource { burrow: toml_path(&path)?, burrow_test: toml_path(&test)? })
}

/// `path = "…"`: a TOML basic string, in which only `\` and `"` need escaping in a path.
fn toml_path(path: &Path) -> Result<String, Failure> {
    let text = path.to_str().ok_or_else(|| Failure(format!("{}: not UTF-8", path.display())))?;
    Ok(format!("path = \"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")))
}

/// Writes every file under `root`, creating folders as needed.
fn write_all(root: &Path, files: &[FileOut]) -> Result<(), Failure> {
    for (path, text) in files {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Formats the Rust files written under `root` with `rustfmt`, when there is one (it comes
/// with rustup's toolchains). The templates are formatted for short names; a long name can
/// push a line over the width, and generated code should pass `cargo fmt --check` as is.
/// Without rustfmt the files are still valid, so a failure here is not an error.
fn format(root: &Path, files: &[FileOut]) {
    let rust: Vec<PathBuf> = files
        .iter()
        .filter(|(path, _)| path.extension().is_some_and(|e| e == "rs"))
        .map(|(path, _)| root.join(path))
        .collect();
    let _ = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(&rust)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// `burrow new NAME`.
fn new(args: &ArgMatches) -> Result<(), Failure> {
    let name = args.get_one::<String>("name").expect("required");
    let project = Names::project(name)
        .map_err(|why| Failure(format!("'{name}' is not a valid project name: {why}")))?;
    let root = args.get_one::<PathBuf>("path").cloned().unwrap_or_else(|| PathBuf::from(name));
    if root.exists() {
        let empty = root.is_dir() && root.read_dir()?.next().is_none();
        if !empty {
            return Err(Failure(format!("{} already exists and is not empty", root.display())));
        }
    }
    let source = burrow_source(args.get_one::<PathBuf>("burrow-path"))?;
    let files = scaffold::project_files(&project, &source.burrow, &source.burrow_test);
    write_all(&root, &files)?;
    format(&root, &files);
    println!("Created {} in {}", project.name, root.display());
    println!("Run it:   cd {} && cargo run    (then open http://localhost:8080)", root.display());
    println!("Test it:  cargo test");
    Ok(())
}

/// The nearest folder at or above the current one with a Cargo.toml.
fn project_root() -> Result<PathBuf, Failure> {
    let here = std::env::current_dir()?;
    here.ancestors().find(|dir| dir.join("Cargo.toml").is_file()).map(Path::to_path_buf).ok_or_else(
        || Failure(format!("not in a project: no Cargo.toml in {} or above", here.display())),
    )
}

/// `burrow generate app NAME`.
fn generate_app(args: &ArgMatches) -> Result<(), Failure> {
    let name = args.get_one::<String>("name").expect("required");
    let app = Names::app(name)
        .map_err(|why| Failure(format!("'{name}' is not a valid app name: {why}")))?;
    let root = project_root()?;
    let src = root.join("src");
    for taken in [src.join(&app.ident), src.join(format!("{}.rs", app.ident))] {
        if taken.exists() {
            return Err(Failure(format!("{} already exists", taken.display())));
        }
    }
    let lib_path = src.join("lib.rs");
    let lib = std::fs::read_to_string(&lib_path)
        .map_err(|e| Failure(format!("not a Burrow project: {}: {e}", lib_path.display())))?;
    let registered = scaffold::register(&lib, &app);
    let url_path = format!("/{}/", app.ident);
    let mut files = scaffold::app_files(&app, &url_path);
    write_all(&root, &files)?;
    println!("Created src/{}/, serving {url_path}", app.ident);
    match registered {
        Some(lib) => {
            std::fs::write(&lib_path, &lib)?;
            files.push((PathBuf::from("src/lib.rs"), lib));
            println!("Registered it in src/lib.rs");
        }
        None => {
            let (module, call) = scaffold::registration(&app);
            println!("No `// burrow:` markers in src/lib.rs: register the app there yourself:");
            println!("    {module}");
            println!("    {call}  (in the Server's list of apps)");
        }
    }
    format(&root, &files);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cli_is_consistent() {
        super::cli().debug_assert();
    }
}
