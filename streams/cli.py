"""The ``streams`` command: worker, demo, produce, tail, bench (``streams COMMAND --help``)."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from streams.config import ConfigError, Settings, load_settings
from streams.sim.simulator import DEFAULT_START


def connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command shares: where the broker is and which config file to read."""
    options = [
        click.option("--bootstrap", "-b", envvar="ENGAGEMENT_BOOTSTRAP", default=None,
                     help="Kafka bootstrap servers (host:port,...). Default: the embedded broker "
                          "(demo, bench) or ENGAGEMENT_BOOTSTRAP."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     envvar="ENGAGEMENT_CONFIG", help="TOML configuration file ([pipeline] and capability sections)."),
        click.option("--partitions", type=int, default=None, help="Partitions of the pipeline's topics."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_from(config_file: str | None, **overrides: Any) -> Settings:
    """Load settings, turning a bad value into a clean click error that names it."""
    try:
        return load_settings(config_file, overrides=overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report configuration problems as one line naming the setting, and an unreachable broker as
    one line naming the address and the cause: never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        except Exception as exc:
            from streams.runtime.connect import BrokerUnreachable

            if isinstance(exc, BrokerUnreachable):
                raise click.ClickException(str(exc)) from None
            raise

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="engagement-streams", prog_name="streams")
def main() -> None:
    """Real-time customer engagement from product events on Kafka."""


@main.command()
@connection_options
@click.option("--local/--no-local", default=None, help="Local profile for the embedded broker (short timeouts, end-offset fix).")
@click.option("--web-host", default=None, help="Address of the /metrics endpoint (default 127.0.0.1).")
@click.option("--web-port", type=int, default=None, help="Port of the /metrics endpoint (default 6066).")
@click.option("--store", default=None, help="Table store: memory:// (default) or rocksdb://.")
@click.option("--data-dir", default=None, help="Where RocksDB tables and Faust's data live.")
@click.option("--app-id", default=None, help="Consumer group and table prefix (default 'engagement').")
@click.option("--loglevel", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@friendly
def worker(config_file: str | None, bootstrap: str | None, partitions: int | None, local: bool | None,
           web_host: str | None, web_port: int | None, store: str | None, data_dir: str | None,
           app_id: str | None, loglevel: str) -> None:
    """Run the pipeline against the configured broker (a Faust worker)."""
    settings = settings_from(config_file, bootstrap=bootstrap, partitions=partitions, local=local,
                             web_host=web_host, web_port=web_port, store=store, data_dir=data_dir,
                             app_id=app_id)
    if not settings.bootstrap:
        raise click.UsageError("bootstrap: set --bootstrap or ENGAGEMENT_BOOTSTRAP "
                               "(or run 'streams demo' to use the embedded broker)")
    from streams.runtime.worker import run_worker

    run_worker(settings, loglevel)


@main.command()
@connection_options
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--send-invalid", is_flag=True, help="Also send lines that break the contract (they will be dead-lettered).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@friendly
def produce(config_file: str | None, bootstrap: str | None, partitions: int | None, source: Any,
            send_invalid: bool, quiet: bool) -> None:
    """Publish events from a JSON-lines file (or - for stdin) to the events topic.

    Each line is checked against the event contract first; invalid lines are reported with
    their line number and reason, and skipped unless --send-invalid.
    """
    settings = settings_from(config_file, bootstrap=bootstrap, partitions=partitions)
    if not settings.bootstrap:
        raise click.UsageError("bootstrap: set --bootstrap or ENGAGEMENT_BOOTSTRAP")
    from streams.tools.produce import produce_lines

    summary = produce_lines(settings, source, send_invalid=send_invalid, progress=not quiet)
    if summary.invalid and not send_invalid:
        sys.exit(1)


@main.command()
@connection_options
@click.argument("topic", required=False)
@click.option("--what", type=click.Choice(["signals", "sessions", "metrics", "dead-letters", "events"]),
              default=None, help="A pipeline topic by role instead of by name.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option("--from-end", is_flag=True, help="Only messages that arrive from now on.")
@click.option("--max", "max_messages", type=int, default=None, help="Stop after this many messages.")
@click.option("--idle-timeout", type=float, default=None, help="Stop after this many seconds without a message.")
@friendly
def tail(config_file: str | None, bootstrap: str | None, partitions: int | None, topic: str | None,
         what: str | None, as_json: bool, from_end: bool, max_messages: int | None,
         idle_timeout: float | None) -> None:
    """Print a topic's messages readably (or as JSON lines): signals, sessions, dead letters, ..."""
    settings = settings_from(config_file, bootstrap=bootstrap, partitions=partitions)
    if not settings.bootstrap:
        raise click.UsageError("bootstrap: set --bootstrap or ENGAGEMENT_BOOTSTRAP")
    roles = {"signals": settings.signals_topic, "sessions": settings.sessions_topic,
             "metrics": settings.metrics_topic, "dead-letters": settings.dead_letter_topic,
             "events": settings.events_topic}
    if (topic is None) == (what is None):
        raise click.UsageError("tail: give a TOPIC or --what (not both)")
    from streams.tools.tail import tail_topic

    tail_topic(settings, topic if topic is not None else roles[str(what)], as_json=as_json, from_end=from_end,
               max_messages=max_messages, idle_timeout=idle_timeout)


@main.command()
@click.option("--users", type=int, default=2000, show_default=True, help="Simulated users.")
@click.option("--days", type=int, default=35, show_default=True, help="Simulated days.")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same events (ids included).")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=DEFAULT_START,
              show_default=True, help="First simulated instant, UTC (a date or date and time).")
@click.option("--max-events", type=int, default=None, help="Stop after this many events.")
@click.option("--bad-rate", type=float, default=0.0, show_default=True,
              help="Share of extra malformed lines (bad JSON, missing ids, oversized, absurd timestamps).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-", show_default=True,
              help="JSON-lines file to write (- for stdout).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Also write the churners as CSV: user_id,churned_at (RFC 3339).")
@click.option("--sparse", is_flag=True, help="A sparse product instead: a few short visits a week, long "
              "silences, short lives (docs/simulator.md).")
@click.option("--cohorts", is_flag=True, help="Accounts that sign users up weeks ahead, start together and "
              "pause together for a holiday instead (docs/simulator.md).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def simulate(users: int, days: int, seed: int, start: Any, max_events: int | None, bad_rate: float, out: str,
             labels: str | None, sparse: bool, cohorts: bool, quiet: bool) -> None:
    """Write a simulated B2B product's events as JSON lines (for 'streams produce').

    Engaged, casual, churning and resurrecting users in accounts with seats, new users
    onboarding, sessions with page views, heartbeats, features and core actions. Deterministic
    for a seed. Example: streams simulate --days 60 -o events.jsonl --labels churn.csv
    """
    from datetime import timezone

    for name, value in (("--users", users), ("--days", days), ("--max-events", max_events)):
        if value is not None and value <= 0:
            raise click.UsageError(f"{name}: must be greater than 0, got {value}")
    if not 0.0 <= bad_rate <= 1.0:
        raise click.UsageError(f"--bad-rate: must be a share between 0 and 1, got {bad_rate}")
    if sparse and cohorts:
        raise click.UsageError("--sparse and --cohorts: choose one product")
    from streams.sim.simulator import SimulationConfig
    from streams.tools.simulate import export, report

    start_ms = int(start.replace(tzinfo=timezone.utc).timestamp() * 1000)
    config = SimulationConfig(users=users, days=days, seed=seed, start_ms=start_ms, sparse=sparse,
                              cohorts=cohorts)
    with click.open_file(out, "wb") as sink:
        label_file = click.open_file(labels, "w", encoding="utf-8") if labels else None
        try:
            summary = export(config, sink, label_file, max_events=max_events, bad_rate=bad_rate,
                             progress=out != "-" and not quiet)
        finally:
            if label_file is not None:
                label_file.close()
    if not quiet:
        report(summary, config, "stdout" if out == "-" else out, labels)


@main.command()
@connection_options
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--users", type=int, default=500, show_default=True, help="Simulated users.")
@click.option("--history-days", type=int, default=28, show_default=True, help="Days of history replayed first.")
@click.option("--speed", type=float, default=3600.0, show_default=True,
              help="Live simulation speed: simulated seconds per real second.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--web-port", type=int, default=None, help="Port of the worker's /metrics endpoint.")
@click.option("--no-live", is_flag=True, help="Print periodic summaries instead of the live terminal view.")
@friendly
def demo(config_file: str | None, bootstrap: str | None, partitions: int | None, duration: float | None,
         users: int, history_days: int, speed: float, seed: int, web_port: int | None, no_live: bool) -> None:
    """Start the embedded broker, a worker and a simulated product, and show what the pipeline sees."""
    settings = settings_from(config_file, bootstrap=bootstrap, partitions=partitions, web_port=web_port)
    for name, value in (("--users", users), ("--speed", speed)):
        if value <= 0:
            raise click.UsageError(f"{name}: must be greater than 0, got {value}")
    if history_days < 0:
        raise click.UsageError(f"--history-days: must not be negative, got {history_days}")
    from streams.tools.demo import run_demo

    run_demo(settings, config_file=config_file, duration=duration, users=users,
             history_days=history_days, speed=speed, seed=seed, live=not no_live)


@main.command()
@connection_options
@click.option("--events", "n_events", type=int, default=200_000, show_default=True,
              help="Events of the dense workload.")
@click.option("--users", type=int, default=5000, show_default=True, help="Distinct users of the dense workload.")
@click.option("--workload", "names", multiple=True, default=("dense",), show_default=True,
              type=click.Choice(["dense", "sparse", "grid", "kdd2015", "all"]),
              help="Workloads to measure (repeatable): dense, sparse (50,000 users over 365 days), grid "
                   "(users x1/x4, days x1/x4), kdd2015 (a real log, if ../shared/datasets has it), all.")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Shrink the sparse and grid user counts (e.g. 0.1 for a quick look).")
@click.option("--repeat", type=int, default=3, show_default=True, help="Runs of each mode; medians are reported.")
@click.option("--json-out", type=click.Path(dir_okay=False), default=None, help="Also write the results as JSON.")
@click.option("--store", default=None, help="Table store for the pipeline runs (memory:// or rocksdb://).")
@friendly
def bench(config_file: str | None, bootstrap: str | None, partitions: int | None, n_events: int, users: int,
          names: tuple[str, ...], scale: float, repeat: int, json_out: str | None, store: str | None) -> None:
    """Throughput of the full pipeline against a bare Faust agent, on the same pre-produced events."""
    settings = settings_from(config_file, bootstrap=bootstrap, partitions=partitions, store=store)
    for name, value in (("--events", n_events), ("--users", users), ("--repeat", repeat), ("--scale", scale)):
        if value <= 0:
            raise click.UsageError(f"{name}: must be greater than 0, got {value}")
    from streams.tools.bench import run_bench

    run_bench(settings, config_file=config_file, n_events=n_events, users=users, repeat=repeat,
              json_out=json_out, names=names, scale=scale)


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              envvar="ENGAGEMENT_CONFIG", help="TOML configuration file ([pipeline] and capability sections).")
@click.option("--partitions", type=int, default=None, help="Partitions of the pipeline's topics.")
@click.option("--port", type=int, default=None, help="Broker port (default 9092 when free, else any free port).")
@click.option("--web-port", type=int, default=None,
              help="Worker's /metrics and /users port (default 6066 when free, else any free port).")
@click.option("--loglevel", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@friendly
def up(config_file: str | None, partitions: int | None, port: int | None, web_port: int | None,
       loglevel: str) -> None:
    """Start the embedded broker and a worker for your own events (no simulation); Ctrl-C stops both.

    Prints the bootstrap address, the worker's /metrics and /users/<id>, and the commands to
    produce, tail and look up users. Also available as 'streams broker'.
    """
    from streams.local.broker import port_is_free

    settings = settings_from(config_file, partitions=partitions)
    for name, value in (("--port", port), ("--web-port", web_port)):
        if value is not None and not port_is_free(value):
            raise click.UsageError(f"{name} {value}: something already listens there")
    from streams.tools.up import run_up

    try:
        run_up(settings, port=port, web_port=web_port, loglevel=loglevel)
    except (RuntimeError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None


main.add_command(click.Command("broker", callback=up.callback, params=up.params, help=up.help, hidden=True))
"""``streams broker``: the same command under the name people look for first (not listed twice)."""


@main.command()
@click.argument("user_id")
@click.option("--url", envvar="ENGAGEMENT_WORKER_URL", default="http://127.0.0.1:6066", show_default=True,
              help="Web address of any worker (it asks the worker that owns the user). Env: ENGAGEMENT_WORKER_URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the worker's JSON document.")
def user(user_id: str, url: str, as_json: bool) -> None:
    """One user's current state: lifecycle, active days, open session, score, churn risk, account."""
    from streams.tools.user import UserLookupError, fetch_user, print_user

    try:
        doc = fetch_user(url, user_id)
    except UserLookupError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        print_user(doc)


@main.command()
@connection_options
@click.option("--out", "-o", type=click.Path(dir_okay=False), default="engagement-report.html", show_default=True,
              help="Where to write the HTML report.")
@click.option("--from-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Read snapshots and signals from a JSON-lines file (e.g. 'streams tail --what metrics --json' "
                   "and '--what signals --json' appended) instead of the topics.")
@click.option("--idle-timeout", type=float, default=3.0, show_default=True,
              help="Stop reading each topic after this many quiet seconds.")
@friendly
def report(config_file: str | None, bootstrap: str | None, partitions: int | None, out: str,
           from_file: str | None, idle_timeout: float) -> None:
    """Write a self-contained HTML report of a run, drawn by Plotly and opening offline.

    Active users and stickiness, lifecycle stock and flows, sessions and active time, usage,
    churn-risk bands over time and the accounts most at risk by name; provisional days marked,
    days only some partitions had reported left out.
    """
    settings = settings_from(config_file, bootstrap=bootstrap, partitions=partitions)
    if from_file is None and not settings.bootstrap:
        raise click.UsageError("bootstrap: set --bootstrap or ENGAGEMENT_BOOTSTRAP, or give --from-file")
    from streams.tools.report import write_report

    shown = write_report(settings, out, source=from_file, idle_timeout=idle_timeout)
    click.echo(f"wrote {out} ({shown} snapshots)")


@main.command("bench-state")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              envvar="ENGAGEMENT_CONFIG", help="TOML configuration file (capability sections apply).")
@click.option("--users", type=int, default=1_000_000, show_default=True, help="Distinct users.")
@click.option("--days", type=int, default=30, show_default=True, help="Days of event time they are spread over.")
@click.option("--store", "stores", multiple=True, default=("memory://", "rocksdb://"), show_default=True,
              help="Table store to measure (repeatable); each runs in a fresh process.")
@click.option("--capabilities", type=click.Choice(["all", "activity"]), default="all", show_default=True,
              help="Every default capability (the full record) or the activity capability alone.")
@click.option("--cache-users", type=int, default=None, help="Decoded records kept in memory (default: the setting).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False), default=None, help="Also write the results as JSON.")
@friendly
def bench_state(config_file: str | None, users: int, days: int, stores: tuple[str, ...], capabilities: str,
                cache_users: int | None, seed: int, json_out: str | None) -> None:
    """Serialized state bytes per user and resident memory growth for many distinct users.

    In-process: the real ingest path and Faust store objects, changelog and outputs counted and
    dropped (no broker). Each store runs in a fresh process.
    """
    settings = settings_from(config_file, state_cache_users=cache_users)
    for name, value in (("--users", users), ("--days", days)):
        if value <= 0:
            raise click.UsageError(f"{name}: must be greater than 0, got {value}")
    from streams.tools.bench_state import run_state_bench

    run_state_bench(settings, users=users, days=days, seed=seed, stores=stores, capabilities=capabilities,
                    json_out=json_out)


@main.command("bench-run", hidden=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), required=True)
@click.option("--mode", type=click.Choice(["bare", "pipeline"]), required=True)
@click.option("--expected", type=int, required=True)
@click.option("--result", type=click.Path(dir_okay=False), required=True)
@friendly
def bench_run(config_file: str, mode: str, expected: int, result: str) -> None:
    """One measured run (started by 'bench'; not for direct use)."""
    from streams.tools.bench_run import run_measured

    run_measured(load_settings(config_file), mode, expected, result)


@main.command()
@connection_options
@click.argument("events", type=click.Path(dir_okay=False, exists=True))
@click.option("--labels", "-l", type=click.Path(dir_okay=False, exists=True), required=True,
              help="Churn labels as CSV: user_id,churned,churn_time (churn_time may be empty), or "
                   "user_id,churned_at listing churners only (what 'streams simulate --labels' writes).")
@click.option("--checkpoints", default="7", show_default=True,
              help="When the current risk is judged: a number of days spread over the events' span, or a CSV "
                   "of account_id,last_day (each account's users judged at the end of that day).")
@click.option("--lead-days", type=float, default=7.0, show_default=True,
              help="Recall with lead counts churners flagged at least this many days before churning.")
@click.option("--window-days", type=float, default=35.0, show_default=True,
              help="Only flags on within this many days before the churn count as warnings of it; also "
                   "the horizon of the checkpoints' judgements.")
@click.option("--json-out", type=click.Path(dir_okay=False), default=None, help="Also write the results as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@friendly
def backtest(config_file: str | None, bootstrap: str | None, partitions: int | None, events: str, labels: str,
             checkpoints: str, lead_days: float, window_days: float, json_out: str | None, quiet: bool) -> None:
    """Replay a historical events file (JSON lines, plain or gzip) through the pipeline and judge its
    churn-risk signals against churn labels, beside three baselines computed in the same run.

    Reports, in one table, precision, recall, F1, median lead, recall with lead, non-churners flagged
    and the AUC of the current risk at checkpoints (definitions in docs/health-and-risk.md#backtest).
    Events without type are read as track events. Uses the embedded broker unless --bootstrap is
    given; topics and consumer group are the run's own. Example:
    streams simulate --users 2000 --days 60 -o events.jsonl --labels churn.csv &&
    streams backtest events.jsonl --labels churn.csv
    """
    from pathlib import Path

    settings = settings_from(config_file, bootstrap=bootstrap, partitions=partitions)
    if lead_days < 0 or window_days <= lead_days:
        raise click.UsageError(f"--window-days must be greater than --lead-days (>= 0), got {window_days} and {lead_days}")
    from streams.tools.backtest import run_backtest

    try:
        run_backtest(settings, Path(events), Path(labels), checkpoints=checkpoints, lead_days=lead_days,
                     window_days=window_days, json_out=Path(json_out) if json_out else None, progress=not quiet)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


if __name__ == "__main__":
    main()
