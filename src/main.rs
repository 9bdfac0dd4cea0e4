//! `citybooks`: argument parsing and wiring only. Everything it does lives in the
//! library crates (`crates/`); see ARCHITECTURE.md.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use citybooks_query::dashboard::{CHARTS, ORIGINAL_QUERY};
use citybooks_query::{write_batches, Engine, OutputFormat};
use citybooks_serve::{jobs, warehouse, DemoLogin, Ports};
use citybooks_server::SqlUsers;
use citybooks_sftp::{HostKeys, Users, HOST_KEYS_DIR, USERS_DIR};
use citybooks_store::Project;
use citybooks_warehouse::{LoadReport, LoadStatus, Warehouse};
use clap::{Parser, Subcommand};

/// The exit status of `citybooks load` when a load was held (see `release`).
const HELD_EXIT: u8 = 3;

/// Counts the heap, for the memory watchdog of `serve` (`[sql] memory_stop_mib`).
#[global_allocator]
static HEAP: citybooks_query::budget::CountingAllocator =
    citybooks_query::budget::CountingAllocator;

mod changes;
mod cluster;
mod report;

/// The SQL user `citybooks demo` creates.
const DEMO_SQL_USER: &str = "demo";

/// The real sample of the ledger (fiscal year 2025, API export), shipped in the binary
/// so `citybooks demo` works from any folder.
const SAMPLE_NAME: &str = "datasf-fy2025-sample.csv";
const SAMPLE: &[u8] = include_bytes!("../data/datasf-fy2025-sample.csv");

#[derive(Parser)]
#[command(
    name = "citybooks",
    version,
    about = "A self-hosted warehouse for San Francisco's Spending and Revenue ledger",
    long_about = "citybooks loads the Controller's Spending and Revenue CSV exports into a Delta Lake \
star schema (report.program, type, fund, finance, transaction), exact to the cent, and answers SQL on it.\n\n\
Start with `citybooks demo`, or `citybooks init my-books && cd my-books && citybooks load ledger.csv`."
)]
struct Cli {
    /// The project folder (holding citybooks.toml); defaults to the current folder.
    #[arg(long, global = true, env = "CITYBOOKS_PROJECT", value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project: a commented citybooks.toml, a local store folder, and the SFTP
    /// drop-box's host keys (Ed25519 and RSA, generated once, in keys/).
    ///
    /// Example: citybooks init my-books
    Init {
        /// Folder to create the project in (made if missing).
        dir: PathBuf,
    },
    /// Load CSV exports (portal or API dialect) into the warehouse.
    ///
    /// Each file is copied into the store (raw/cli/), conformed, and committed atomically; it
    /// replaces exactly the fiscal years it contains. Bad rows go to meta.quarantine. Loading a
    /// file whose content is already the warehouse's is a no-op.
    ///
    /// A load that would shrink a fiscal year by more than [load] max_shrink_percent (a
    /// one-row test file, a truncated export) is held: nothing is replaced, the exit
    /// status is 3, and `citybooks release LOAD_ID` loads it anyway.
    ///
    /// Example: citybooks load exports/spending-2025.csv s3://bucket/drop/weekly.csv
    Load(LoadArgs),
    /// Publish the star schema into a PostgreSQL or Amazon Redshift, up to the newest load.
    ///
    /// Creates program, type, fund, finance and transaction (numeric(20,2) amounts, keys,
    /// comments) in the target schema if missing, or checks them; then sends what changed
    /// since the last publish there (new or changed dimension members, and the fiscal years
    /// replaced since) in one transaction: readers of the target never see a half state.
    /// Twice is a no-op. A target edited by other hands is refused (--full republishes).
    /// The password comes from PGPASSWORD, ~/.pgpass or [publish] password, never from the
    /// target. Every publish is recorded in meta.publishes.
    ///
    /// Example: PGPASSWORD=... citybooks publish postgres://city@db.example.org:5432/finance
    Publish(PublishArgs),
    /// Download the ledger from the open-data portal (DataSF's Spending and Revenue,
    /// bpnb-jwfb) and load it.
    ///
    /// Pages of [fetch] page_rows rows go to the store (fetch/), and the whole download is
    /// published as one file under raw/datasf/<time>/ only when every page is in; an
    /// interrupted fetch resumes from its last complete page. The file is then loaded like
    /// `citybooks load` (replacing exactly its fiscal years); content equal to the last load
    /// is a recorded no-op.
    ///
    /// Example: citybooks fetch --fiscal-year 2025
    Fetch(FetchArgs),
    /// Run one read-only SQL statement on the warehouse.
    ///
    /// Tables: report.program, report.type, report.fund, report.finance, report.transaction,
    /// meta.loads, meta.quarantine, meta.publishes.
    ///
    /// Example: citybooks query "select fiscal_year, sum(amount) from report.transaction group by 1"
    Query(QueryArgs),
    /// What changed between two loads: for each fiscal year either touched, revenue and
    /// spending before and after, the fact rows added, removed and changed (compared at
    /// the grain of the star schema: the year and every key), and the members of one
    /// hierarchy whose totals moved, largest first, at each of its levels. Read with
    /// Delta time travel to the versions meta.loads recorded: exact to the cent.
    ///
    /// Example: citybooks changes --from-load 3 --to-load 5 --by fund --format csv
    Changes(ChangesArgs),
    /// Compact every table's small files, checkpoint its Delta log and remove the data
    /// files that no version younger than the retention references (what loads
    /// replaced or compaction merged long ago). Time travel to a load older than the
    /// retention may fail afterwards.
    ///
    /// Example: citybooks vacuum --retention-hours 720
    Vacuum(VacuumArgs),
    /// Settle a held load: load its file anyway (replacing its fiscal years), or with
    /// --discard let it go without loading it. Either is recorded in meta.loads.
    ///
    /// Example: citybooks release 17
    Release(ReleaseArgs),
    /// Show loads, held loads, row counts per table and fiscal year, and the quarantine;
    /// with --load N, the quality of one load: rows read, loaded and quarantined by
    /// reason (with their lines), the names rule 6 conformed, the rows that got each
    /// placeholder, and jumps against the previous load of the same source.
    ///
    /// Example: citybooks status --load 7
    Status(StatusArgs),
    /// Create a demo project, load the real sample shipped with citybooks, print the
    /// original dashboard's four charts and the original users' query, then serve
    /// everything on this machine only (dashboard, psql, SFTP) until Ctrl-C.
    ///
    /// Example: citybooks demo            (uses ./citybooks-demo)
    Demo {
        /// Folder for the demo project.
        #[arg(default_value = "citybooks-demo")]
        dir: PathBuf,
        /// Stop after loading and printing; do not serve.
        #[arg(long)]
        no_serve: bool,
        #[command(flatten)]
        ports: Ports,
    },
    /// Serve the warehouse until Ctrl-C / SIGTERM: the SFTP drop-box, the PostgreSQL wire
    /// protocol for psql and BI tools, and the HTTP API with the web dashboard.
    ///
    /// Each part can be switched off in citybooks.toml ([sftp], [sql], [http] enabled = false).
    /// SFTP users (citybooks user add) upload to raw/NAME/ in the store, and every .csv they
    /// upload is loaded, one at a time, with the result written beside it as NAME.csv.load.json.
    /// SQL users (citybooks sql-user add) connect with psql; everything is read-only, and a
    /// new load is visible to the next query. Port 0 picks a free port.
    ///
    /// Example: citybooks serve --sql-port 5439 --http-port 8080 --sftp-port 2222
    Serve {
        #[command(flatten)]
        ports: Ports,
    },
    /// Run a Ballista scheduler (Apache DataFusion Ballista 55) until Ctrl-C / SIGTERM:
    /// with [query] engine = "ballista", citybooks' report.* queries run on its cluster.
    ///
    /// Flags and defaults are those of the stock ballista-scheduler. Run it in the project
    /// folder (or with --project) so it reaches the project's store while it plans.
    ///
    /// Example: citybooks scheduler --bind-port 50050
    Scheduler(cluster::SchedulerArgs),
    /// Run a Ballista executor (Apache DataFusion Ballista 55) until Ctrl-C / SIGTERM.
    ///
    /// Flags and defaults are those of the stock ballista-executor; for a second executor
    /// on one host change all three ports. Run it in the project folder (or with --project)
    /// so it reads the project's store (S3, or a folder every process shares).
    ///
    /// Example: citybooks executor --scheduler-host sched --bind-port 50051
    Executor(cluster::ExecutorArgs),
    /// Manage the users of the PostgreSQL wire protocol (SCRAM-SHA-256 passwords).
    ///
    /// The password is read from stdin when stdin is not a terminal, otherwise asked for
    /// twice. Only a salted SCRAM verifier is stored (sql-users/NAME, mode 0600), and with
    /// [sql] password_auth = "md5" also PostgreSQL's MD5 verifier.
    ///
    /// Example: echo 'a long passphrase' | citybooks sql-user add analyst
    SqlUser {
        #[command(subcommand)]
        action: SqlUserAction,
    },
    /// Manage the SFTP drop-box's users and their SSH public keys (users/NAME.pub).
    ///
    /// Example: citybooks user add finance --key ~/.ssh/id_ed25519.pub
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Remove the project's warehouse and raw files from its store (asks first).
    ///
    /// citybooks.toml stays, so the project can be loaded again.
    ///
    /// Example: citybooks destroy --yes
    Destroy {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// The arguments of `citybooks load`.
#[derive(clap::Args)]
struct LoadArgs {
    /// Local files or s3:// objects.
    #[arg(required_unless_present = "confirm", value_name = "PATH")]
    paths: Vec<String>,
    /// Replace the files' fiscal years even if one shrinks past [load]
    /// max_shrink_percent.
    #[arg(long)]
    replace_years: bool,
    /// Load held load N anyway (the same as `citybooks release N`).
    #[arg(long, value_name = "N", conflicts_with = "paths")]
    confirm: Option<i64>,
    /// Do not draw a progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// Print the load reports as JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// Then publish to [publish] target (see `citybooks publish`) if a load committed.
    #[arg(long)]
    publish: bool,
}

/// The arguments of `citybooks publish`.
#[derive(clap::Args)]
struct PublishArgs {
    /// postgres://USER@HOST[:PORT]/DB or redshift://USER@HOST[:5439]/DB (default:
    /// [publish] target).
    #[arg(value_name = "TARGET")]
    target: Option<String>,
    /// The schema of the target (default: [publish] schema, report).
    #[arg(long)]
    schema: Option<String>,
    /// Republish every fiscal year and member, whatever the target holds (also over a
    /// target changed by hand).
    #[arg(long)]
    full: bool,
    /// Redshift: the IAM role its COPY reads the store's files with (default: [publish]
    /// iam_role).
    #[arg(long, value_name = "ARN")]
    iam_role: Option<String>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The arguments of `citybooks fetch`.
#[derive(clap::Args)]
struct FetchArgs {
    /// The Socrata portal (default: [fetch] portal, https://data.sfgov.org).
    #[arg(long, value_name = "URL")]
    portal: Option<String>,
    /// Only this fiscal year.
    #[arg(long, conflicts_with = "since", value_name = "YEAR")]
    fiscal_year: Option<i32>,
    /// Only this fiscal year and later ones.
    #[arg(long, value_name = "YEAR")]
    since: Option<i32>,
    /// Do not draw a progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// Print the fetch and load report as one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

/// The arguments of `citybooks query`.
#[derive(clap::Args)]
struct QueryArgs {
    /// The SQL statement.
    sql: String,
    /// Output format: table, csv, json (lines) or parquet.
    #[arg(long, default_value = "table")]
    format: OutputFormat,
    /// Write the result to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Query the warehouse as it was right after load N (Delta time travel).
    #[arg(long, value_name = "N")]
    as_of_load: Option<i64>,
}

/// The arguments of `citybooks changes`.
#[derive(clap::Args)]
struct ChangesArgs {
    /// The earlier load (default: the load that loaded data before --to-load).
    #[arg(long, value_name = "A")]
    from_load: Option<i64>,
    /// The later load (default: the latest load that loaded data).
    #[arg(long, value_name = "B")]
    to_load: Option<i64>,
    /// The hierarchy whose members are compared: organization, type or fund.
    #[arg(long, default_value = "organization")]
    by: String,
    /// Members listed per level and year.
    #[arg(long, default_value_t = citybooks_warehouse::changes::TOP)]
    top: usize,
    /// table, csv (one row per year total and member) or json.
    #[arg(long, default_value = "table")]
    format: String,
}

/// The arguments of `citybooks status`.
#[derive(clap::Args)]
struct StatusArgs {
    /// The quality of this load (`latest` for the last one) instead of the overview.
    #[arg(long, value_name = "N")]
    load: Option<String>,
    /// With --load: print the report as JSON.
    #[arg(long, requires = "load")]
    json: bool,
}

/// The arguments of `citybooks vacuum`.
#[derive(clap::Args)]
struct VacuumArgs {
    /// Keep every file a version of the last this-many hours needs (Delta's default
    /// is a week).
    #[arg(long, default_value_t = 168)]
    retention_hours: u64,
    /// Only count the files that would go.
    #[arg(long)]
    dry_run: bool,
}

/// The arguments of `citybooks release`.
#[derive(clap::Args)]
struct ReleaseArgs {
    /// The held load's id (`citybooks status` lists the held loads).
    #[arg(value_name = "LOAD_ID")]
    load_id: i64,
    /// Let it go without loading it.
    #[arg(long)]
    discard: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user, or keys to a user: OpenSSH public keys (RSA, Ed25519, ECDSA).
    ///
    /// Example: citybooks user add finance --key alice.pub --key laptop.pub
    Add {
        /// The user name (a-z, 0-9, '-', '_', '.'); their home is raw/NAME/ in the store.
        name: String,
        /// A public key file as ssh-keygen writes it (repeatable; several keys per line-file).
        #[arg(long = "key", required = true, value_name = "FILE.pub")]
        keys: Vec<PathBuf>,
    },
    /// List users with their key fingerprints.
    ///
    /// Example: citybooks user list
    List,
    /// Remove a user; files they uploaded stay in the store.
    ///
    /// Example: citybooks user remove finance
    Remove { name: String },
}

#[derive(Subcommand)]
enum SqlUserAction {
    /// Add a user, or set a user's new password.
    ///
    /// Example: citybooks sql-user add analyst   (then type the password twice)
    Add {
        /// The user name (letters, digits, '_', '-', '.'; starts with a letter or '_').
        name: String,
    },
    /// List the users.
    ///
    /// Example: citybooks sql-user list
    List,
    /// Remove a user (their open connections stay until they end).
    ///
    /// Example: citybooks sql-user remove analyst
    Remove { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Like other command-line tools, end quietly when the reader of our output goes
    // away (`citybooks query ... | head`) instead of failing on a broken pipe. Not the
    // long-running servers: there a peer that closes a socket would end the process
    // (SIGPIPE kills it silently), where Rust's default turns it into an error.
    #[cfg(unix)]
    if !matches!(
        cli.command,
        Command::Serve { .. } | Command::Demo { .. } | Command::Scheduler(_) | Command::Executor(_)
    ) {
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CITYBOOKS_LOG").unwrap_or_else(|_| {
            // The Delta kernel logs an ERROR when it probes a table that has no commit yet,
            // which citybooks does on purpose before a table's first load.
            "warn,buoyant_kernel::snapshot::builder=off".into()
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // 32 MiB stacks, as the stock Ballista scheduler's runtime has: planning and
    // (de)serialising deep plans recurses (the tax histogram's plan overflowed 2 MiB in
    // a debug build). Only address space is reserved up front.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("citybooks: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("citybooks: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn open_project(flag: Option<&Path>) -> Result<Project> {
    let dir = flag
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Project::open(&dir)?)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let project = || open_project(cli.project.as_deref());
    match cli.command {
        Command::Init { dir } => init(&dir).await,
        Command::Load(args) => load(&project()?, args).await,
        Command::Vacuum(args) => vacuum(&project()?, args).await,
        Command::Changes(args) => changes(&project()?, args).await,
        Command::Release(args) => release(&project()?, args).await,
        Command::Publish(args) => publish(&project()?, args).await,
        Command::Query(args) => query(&project()?, args).await,
        Command::Fetch(args) => fetch(&project()?, args).await,
        Command::Status(args) => match &args.load {
            None => status(&project()?).await,
            Some(load) => quality(&project()?, load, args.json).await,
        },
        Command::SqlUser { action } => sql_user(&project()?, action).await,
        Command::User { action } => user(&project()?, action).await,
        Command::Destroy { yes } => destroy(&project()?, yes).await,
        Command::Demo {
            dir,
            no_serve,
            ports,
        } => demo(&dir, (!no_serve).then_some(ports)).await,
        Command::Serve { ports } => {
            citybooks_serve::serve(&project()?, &ports, None, stop_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scheduler(args) => {
            cluster::scheduler(cli.project.as_deref(), args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Executor(args) => {
            cluster::executor(cli.project.as_deref(), args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `citybooks init`.
async fn init(dir: &Path) -> Result<ExitCode> {
    let project = Project::init(dir)?;
    let host_keys = HostKeys::ensure(&project.dir.join(HOST_KEYS_DIR))?;
    println!("created project {}", project.dir.display());
    println!(
        "  config: {}",
        project.dir.join(citybooks_store::CONFIG_FILE).display()
    );
    println!("  store:  {}", project.store()?.root());
    for fp in host_keys.fingerprints() {
        println!("  SFTP host key: {fp}");
    }
    println!("next: cd {} && citybooks load FILE.csv", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `citybooks load`.
async fn load(project: &Project, args: LoadArgs) -> Result<ExitCode> {
    let LoadArgs {
        paths,
        replace_years,
        confirm,
        no_progress,
        json,
        publish,
    } = args;
    let wh = warehouse(project)?;
    let wh = if replace_years {
        wh.replacing_years()
    } else {
        wh
    };
    let publish_to = match publish {
        false => None,
        true => Some(
            citybooks_publish::Options::from_config(
                &project.config.publish,
                None,
                None,
                None,
                false,
            )?
            .context(
                "--publish: no [publish] target in citybooks.toml (or CITYBOOKS_PUBLISH_TARGET)",
            )?,
        ),
    };
    let mut committed = false;
    let show = !no_progress && std::io::stderr().is_terminal();
    let mut ok = true;
    let mut held = false;
    let mut reports = Vec::new();
    if let Some(n) = confirm {
        let report = wh
            .release(n, false, show)
            .await
            .with_context(|| format!("releasing held load {n}"))?;
        reports.push((format!("held load {n}"), report));
    }
    for path in &paths {
        let report = wh
            .load_source(path, show)
            .await
            .with_context(|| format!("loading {path}"))?;
        reports.push((path.clone(), report));
    }
    for (path, report) in &reports {
        if json {
            println!("{}", serde_json::to_string(report)?);
        } else {
            print_report(path, report);
        }
        ok &= report.status != LoadStatus::Failed;
        held |= report.status == LoadStatus::Held;
        committed |= report.status == LoadStatus::Loaded;
    }
    if let (Some((target, options)), true) = (&publish_to, committed) {
        match citybooks_publish::publish_and_record(&wh, target, options).await {
            Ok(r) if json => println!("{}", publish_json(&r)),
            Ok(r) => println!("{}", r.describe(&options.schema)),
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
            }
        }
    }
    Ok(match (ok, held) {
        (false, _) => ExitCode::FAILURE,
        (true, true) => ExitCode::from(HELD_EXIT),
        (true, false) => ExitCode::SUCCESS,
    })
}

/// `citybooks changes`.
async fn changes(project: &Project, args: ChangesArgs) -> Result<ExitCode> {
    let by = citybooks_model::ledger()
        .hierarchy(&args.by)
        .with_context(|| {
            let ids: Vec<&str> = citybooks_model::ledger()
                .layouts
                .iter()
                .map(|l| l.hierarchy.id)
                .collect();
            format!("--by {:?}: use one of {}", args.by, ids.join(", "))
        })?;
    let wh = warehouse(project)?;
    let changes = wh
        .changes(args.from_load, args.to_load, by, args.top)
        .await?;
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&changes)?),
        "csv" => print!("{}", changes::csv(&changes)),
        "table" => changes::print(&changes),
        other => bail!("--format {other:?}: use table, csv or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `citybooks vacuum`.
async fn vacuum(project: &Project, args: VacuumArgs) -> Result<ExitCode> {
    let wh = warehouse(project)?;
    let hours = args.retention_hours.min(i64::MAX as u64 / 3600) as i64;
    let done = wh
        .vacuum(chrono::Duration::hours(hours), args.dry_run)
        .await?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    for (table, v) in &done {
        let compacted = if v.compacted > 0 {
            format!(
                ", compacted {} small file{} into {}",
                v.compacted,
                plural(v.compacted),
                v.compacted_into
            )
        } else {
            String::new()
        };
        println!(
            "{table}: {verb} {} unreferenced data file{}{compacted}{}",
            v.files,
            plural(v.files as u64),
            if v.checkpoint {
                ", log checkpointed"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `citybooks release`.
async fn release(project: &Project, args: ReleaseArgs) -> Result<ExitCode> {
    let wh = warehouse(project)?;
    let show = std::io::stderr().is_terminal();
    let report = wh.release(args.load_id, args.discard, show).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&format!("held load {}", args.load_id), &report);
    }
    Ok(if report.status == LoadStatus::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `citybooks publish`.
async fn publish(project: &Project, args: PublishArgs) -> Result<ExitCode> {
    let Some((target, options)) = citybooks_publish::Options::from_config(
        &project.config.publish,
        args.target.as_deref(),
        args.schema,
        args.iam_role,
        args.full,
    )?
    else {
        bail!("no target: give one (citybooks publish postgres://user@host:5432/db) or set [publish] target");
    };
    let wh = warehouse(project)?;
    let report = citybooks_publish::publish_and_record(&wh, &target, &options).await?;
    if args.json {
        println!("{}", publish_json(&report));
    } else {
        println!("{}", report.describe(&options.schema));
    }
    Ok(ExitCode::SUCCESS)
}

/// `citybooks query`.
async fn query(project: &Project, args: QueryArgs) -> Result<ExitCode> {
    let wh = warehouse(project)?;
    let engine = Engine::from_config(&project.config.query)?;
    let result = citybooks_query::query(&engine, &wh, &args.sql, args.as_of_load).await?;
    let format = args.format;
    match args.output {
        Some(file) => {
            let f = std::fs::File::create(&file)
                .with_context(|| format!("creating {}", file.display()))?;
            write_batches(&result, format, std::io::BufWriter::new(f))?;
            eprintln!("wrote {} rows to {}", result.num_rows(), file.display());
        }
        None => {
            if format == OutputFormat::Parquet && std::io::stdout().is_terminal() {
                bail!("Parquet is binary: give --output FILE or redirect standard output");
            }
            write_batches(&result, format, std::io::stdout())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `citybooks fetch`.
async fn fetch(project: &Project, args: FetchArgs) -> Result<ExitCode> {
    let FetchArgs {
        portal,
        fiscal_year,
        since,
        no_progress,
        json,
    } = args;
    let years = match (fiscal_year, since) {
        (Some(y), _) => citybooks_fetch::Years::One(y),
        (None, Some(y)) => citybooks_fetch::Years::Since(y),
        (None, None) => citybooks_fetch::Years::All,
    };
    let show = !no_progress && !json && std::io::stderr().is_terminal();
    let bar = show.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} fetching {msg} [{bar:30}] {pos}/{len} rows, {binary_bytes} ({elapsed})",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_message(years.describe());
        bar
    });
    let progress = |p: &citybooks_fetch::Progress| {
        if let Some(bar) = &bar {
            bar.set_length(p.total_rows);
            bar.set_position(p.rows);
            bar.set_message(format!(
                "{} (page {}/{}, {} bytes)",
                years.describe(),
                p.pages_done,
                p.pages,
                p.bytes
            ));
            if p.pages_done == p.pages && p.pages > 0 {
                bar.finish_and_clear();
            }
        }
    };
    let outcome = jobs::fetch_and_load(project, years, portal.as_deref(), progress, show).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (fetched, report) = outcome?;
    if json {
        println!("{}", serde_json::json!({"fetch": fetched, "load": report}));
    } else {
        println!(
            "fetched {} rows ({} bytes, {} page(s){}) into {}",
            fetched.rows,
            fetched.bytes,
            fetched.pages,
            if fetched.resumed_pages > 0 {
                format!(", {} resumed", fetched.resumed_pages)
            } else {
                String::new()
            },
            fetched.file
        );
        print_report(&fetched.file, &report);
    }
    Ok(if report.status == LoadStatus::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `citybooks sql-user`.
async fn sql_user(project: &Project, action: SqlUserAction) -> Result<ExitCode> {
    let users = SqlUsers::of_project(project);
    match action {
        SqlUserAction::Add { name } => {
            let password = read_password(&name)?;
            let existed = users.add(&name, &password)?;
            println!(
                "SQL user {name} {}; connect with: psql -h HOST -p {} -U {name} -d citybooks",
                if existed {
                    "has a new password"
                } else {
                    "added"
                },
                project.config.sql.port
            );
        }
        SqlUserAction::List => {
            let all = users.list()?;
            if all.is_empty() {
                println!("no SQL users yet: citybooks sql-user add NAME");
            }
            for name in all {
                println!("{name}");
            }
        }
        SqlUserAction::Remove { name } => {
            users.remove(&name)?;
            println!("SQL user {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `citybooks user`.
async fn user(project: &Project, action: UserAction) -> Result<ExitCode> {
    let users = Users::new(&project.dir.join(USERS_DIR));
    match action {
        UserAction::Add { name, keys } => {
            let added = users.add(&name, &keys)?;
            let total = users.keys(&name)?.len();
            println!(
                "user {name}: {added} key(s) added, {total} in all; home raw/{name}/ in the store"
            );
        }
        UserAction::List => {
            let all = users.list()?;
            if all.is_empty() {
                println!("no users yet: citybooks user add NAME --key FILE.pub");
            }
            for (name, keys) in all {
                println!("{name}");
                for k in keys {
                    println!("  {} {} {}", k.fingerprint, k.algorithm, k.comment);
                }
            }
        }
        UserAction::Remove { name } => {
            users.remove(&name)?;
            println!("user {name} removed; their files stay in raw/{name}/");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `citybooks destroy`.
async fn destroy(project: &Project, yes: bool) -> Result<ExitCode> {
    let wh = warehouse(project)?;
    let objects = wh.store().list("warehouse").await?.len() + wh.store().list("raw").await?.len();
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("destroy asks for confirmation on a terminal; pass --yes to confirm non-interactively");
        }
        print!(
            "Remove the warehouse and raw files of {} ({objects} objects in {})? Type 'yes': ",
            project.dir.display(),
            wh.store().root()
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            println!("nothing removed");
            return Ok(ExitCode::FAILURE);
        }
    }
    let n = wh.destroy().await?;
    println!(
        "removed {n} objects from {}; {} stays",
        wh.store().root(),
        citybooks_store::CONFIG_FILE
    );
    Ok(ExitCode::SUCCESS)
}

/// A publish report as one JSON object.
fn publish_json(r: &citybooks_publish::Report) -> serde_json::Value {
    serde_json::json!({
        "target": r.target,
        "load_id": r.load_id,
        "previous_load_id": r.previous,
        "years": r.years,
        "rows": r.rows,
        "members": r.members,
        "created": r.created,
        "up_to_date": r.up_to_date,
        "seconds": r.seconds,
    })
}

fn print_report(path: &str, r: &LoadReport) {
    let rate = r.rows_read as f64 / r.seconds.max(1e-9);
    let mbps = r.bytes as f64 / 1e6 / r.seconds.max(1e-9);
    match r.status {
        LoadStatus::Loaded => println!(
            "load {}: loaded {path} ({} dialect): {} rows read, {} loaded, {} quarantined, in {:.2} s ({rate:.0} rows/s, {mbps:.1} MB/s)",
            r.load_id,
            r.dialect.as_deref().unwrap_or("?"),
            r.rows_read,
            r.rows_loaded,
            r.rows_quarantined,
            r.seconds
        ),
        LoadStatus::Unchanged => println!(
            "load {}: unchanged {path}: same content as {} already in the warehouse; nothing to do",
            r.load_id, r.source_file
        ),
        LoadStatus::Failed => println!(
            "load {}: FAILED {path}: {}",
            r.load_id,
            r.error.as_deref().unwrap_or("unknown error")
        ),
        LoadStatus::Held => println!(
            "load {}: HELD {path}: {}",
            r.load_id,
            r.hold.as_deref().unwrap_or_default()
        ),
        LoadStatus::Discarded => println!(
            "load {}: discarded {path} ({}): nothing was loaded",
            r.load_id, r.source_file
        ),
    }
    if r.status == LoadStatus::Loaded {
        let years: Vec<String> = r.years_replaced.iter().map(|y| y.to_string()).collect();
        println!("  fiscal years replaced: {}", years.join(", "));
        if let Some(changes) = &r.changes {
            println!("  what changed: {changes}");
        }
        println!("  raw file kept at: {}", r.source_file);
        let members: Vec<String> = r
            .new_members
            .iter()
            .map(|(t, n)| format!("{t} +{n}"))
            .collect();
        println!("  new dimension members: {}", members.join(", "));
    }
    for c in &r.conformed {
        println!("  conformed (rule 6): {c}");
    }
    if !r.lease_wait.for_holders.is_empty() {
        println!(
            "  waited {:.1} s for the writer lease, held by: {}",
            r.lease_wait.seconds,
            r.lease_wait.for_holders.join("; ")
        );
    }
    for q in &r.quarantine_sample {
        println!(
            "  quarantined: {}, line {}{}: {}",
            r.source_file,
            q.line,
            q.field
                .as_ref()
                .map(|f| format!(", field {f}"))
                .unwrap_or_default(),
            q.reason
        );
    }
    if r.rows_quarantined as usize > r.quarantine_sample.len() {
        println!(
            "  ... {} quarantined rows in all: citybooks query \"select * from meta.quarantine where load_id = {}\"",
            r.rows_quarantined, r.load_id
        );
    }
}

async fn print_query(wh: &Warehouse, title: &str, sql: &str) -> Result<()> {
    println!("\n== {title}");
    // Status and the demo's summaries read meta.* and small aggregates: in-process.
    let result = citybooks_query::query(&Engine::Embedded, wh, sql, None).await?;
    write_batches(&result, OutputFormat::Table, std::io::stdout())?;
    Ok(())
}

/// The scheduled refresh: its schedule, the last refresh and the next.
fn print_refresh(project: &Project) {
    let schedule = project.config.fetch.schedule.as_deref();
    let recorded = citybooks_fetch::RefreshStatus::read(&project.dir);
    if schedule.is_none() && recorded.is_none() {
        return;
    }
    let r = recorded.unwrap_or_default();
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "never".into());
    println!(
        "refresh {} (fetch of the current fiscal year by citybooks serve)",
        schedule.unwrap_or("off")
    );
    println!(
        "  last: {}{}",
        shown(&r.last_success),
        r.last_result
            .as_ref()
            .map(|t| format!(" — {t}"))
            .unwrap_or_default()
    );
    if let Some(e) = &r.last_error {
        println!("  last failure ({} in a row): {e}", r.failures_in_a_row);
    }
    if let Some(schedule) = schedule {
        let next = match citybooks_fetch::Schedule::parse(schedule) {
            Ok(s) => r
                .next_refresh
                .clone()
                .or_else(|| s.next_after(chrono::Local::now()).map(|t| t.to_rfc3339()))
                .unwrap_or_else(|| "never".into()),
            Err(e) => e,
        };
        println!("  next: {next} (while citybooks serve runs)");
    }
}

async fn status(project: &Project) -> Result<ExitCode> {
    let wh = warehouse(project)?;
    println!("project {}", project.dir.display());
    println!("store   {}", wh.store().root());
    print_refresh(project);
    let loads = wh.loads().await?;
    if loads.is_empty() {
        println!("\nno loads yet: citybooks load FILE.csv");
        return Ok(ExitCode::SUCCESS);
    }
    print_query(&wh, "loads", citybooks_warehouse::status::LOADS).await?;
    let held = citybooks_warehouse::loads::waiting(&loads);
    if !held.is_empty() {
        println!("\nheld loads (nothing of them was replaced):");
        for l in held {
            println!(
                "  load {} ({}): {}",
                l.load_id,
                l.source_file,
                l.hold.as_deref().unwrap_or_default()
            );
        }
    }
    for q in citybooks_warehouse::status::tables() {
        print_query(&wh, q.title, &q.sql).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `citybooks status --load N`.
async fn quality(project: &Project, load: &str, json: bool) -> Result<ExitCode> {
    let load = match load {
        "latest" => None,
        n => Some(n.parse::<i64>().with_context(|| {
            format!("--load {n:?}: a load id (see citybooks status), or latest")
        })?),
    };
    let q = warehouse(project)?.quality(load).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&q)?);
    } else {
        report::print_quality(&q);
    }
    Ok(ExitCode::SUCCESS)
}

/// The password of a new SQL user: stdin's first line when stdin is not a terminal,
/// otherwise typed twice without echo.
fn read_password(name: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password(format!("password for SQL user {name}: "))?;
    let second = rpassword::prompt_password("again: ")?;
    if first != second {
        bail!("the two passwords differ; nothing changed");
    }
    Ok(first)
}

async fn demo(dir: &Path, serve_on: Option<Ports>) -> Result<ExitCode> {
    let project = match Project::open(dir) {
        Ok(p) => p,
        Err(citybooks_store::ProjectError::NotAProject { .. }) => Project::init(dir)?,
        Err(e) => return Err(e.into()),
    };
    println!("demo project: {}", project.dir.display());
    let sample = project.dir.join(SAMPLE_NAME);
    std::fs::write(&sample, SAMPLE).with_context(|| format!("writing {}", sample.display()))?;
    let wh = warehouse(&project)?;
    let report = wh
        .load_path(&sample, std::io::stderr().is_terminal())
        .await?;
    print_report(&sample.display().to_string(), &report);
    if report.status == LoadStatus::Failed {
        return Ok(ExitCode::FAILURE);
    }
    for chart in CHARTS.iter().chain([&ORIGINAL_QUERY]) {
        print_query(&wh, chart.title, chart.sql).await?;
    }
    println!(
        "\nnext: citybooks --project {} query \"select * from report.program limit 5\"",
        dir.display()
    );
    let Some(ports) = serve_on else {
        return Ok(ExitCode::SUCCESS);
    };
    // A demo serves this machine only, with a fresh password for its SQL user.
    let password = citybooks_serve::sql::random_password();
    SqlUsers::of_project(&project).add(DEMO_SQL_USER, &password)?;
    println!();
    let login = DemoLogin {
        user: DEMO_SQL_USER,
        password,
    };
    citybooks_serve::serve(&project, &ports, Some(login), stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM on Unix: what stops `serve`, `demo` and the cluster roles.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
