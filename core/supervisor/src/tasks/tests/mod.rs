//! The tasks' state transitions over a recording fake runtime and an
//! in-process fake of the shims, on a paused clock: what the runtime was
//! asked, in what order, which events were told, and what a restarted core
//! makes of the task directories it finds.

mod fakes;

use std::time::Duration;

use berth_proto::{
    CreateTaskRequest, Event, EventKind, HealthCheck, RestartPolicy, TaskStatus, UpdateTaskRequest,
};
use berth_runtime::fake::{Call, Recording};
use berth_runtime::ExecOutput;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::Error;
use fakes::{Core, FakeShims, Fixture, StateDir, NS};

fn request(id: &str) -> CreateTaskRequest {
    serde_json::from_value(serde_json::json!({ "id": id, "spec": {} })).unwrap()
}

fn restarting(id: &str, policy: RestartPolicy) -> CreateTaskRequest {
    CreateTaskRequest {
        restart: Some(policy),
        ..request(id)
    }
}

/// The next event of `kind` (events of other kinds are passed over).
async fn next(rx: &mut broadcast::Receiver<Event>, kind: EventKind) -> Event {
    loop {
        let ev = rx.recv().await.unwrap();
        if ev.kind == kind {
            return ev;
        }
    }
}

fn kinds(events: &[Event]) -> Vec<(String, EventKind)> {
    events.iter().map(|e| (e.id.clone(), e.kind)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_task_is_created_started_exits_and_is_deleted() {
    let t = Fixture::new("lifecycle");
    let mut rx = t.core.events();
    let info = t.core.tasks.create(NS, request("c1")).await.unwrap();
    assert_eq!(info.status, TaskStatus::Created);
    assert!(info.pid > 0);
    assert!(matches!(
        t.core.tasks.create(NS, request("c1")).await,
        Err(Error::AlreadyExists(_))
    ));
    t.core.tasks.start(NS, "c1").await.unwrap();
    assert!(matches!(
        t.core.tasks.delete(NS, "c1").await,
        Err(Error::FailedPrecondition(_))
    ));

    t.shims.exit("c1", 3);
    let exit = next(&mut rx, EventKind::Exit).await;
    assert_eq!((exit.exit_code, exit.restarting), (Some(3), false));
    let info = t.core.tasks.inspect(NS, "c1").unwrap();
    assert_eq!(
        (info.status, info.exit_code),
        (TaskStatus::Stopped, Some(3))
    );
    assert!(info.attach_socket.is_empty());
    assert!(matches!(
        t.core.tasks.start(NS, "c1").await,
        Err(Error::FailedPrecondition(_))
    ));

    t.core.tasks.delete(NS, "c1").await.unwrap();
    t.core.tasks.drain_deletes().await;
    assert!(matches!(
        t.core.tasks.inspect(NS, "c1"),
        Err(Error::NotFound(_))
    ));
    assert!(!t.dir.0.join("tasks").join(NS).join("c1").exists());
    assert_eq!(t.runtime.commands(), ["create", "start", "delete"]);
    let (log, _) = t.core.events.subscribe(0);
    assert_eq!(
        kinds(&log),
        [
            ("c1".into(), EventKind::Start),
            ("c1".into(), EventKind::Exit),
            ("c1".into(), EventKind::Delete)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_create_leaves_nothing_behind() {
    let t = Fixture::new("failed-create");
    t.shims.state().spawn_error = Some("exec: \"nosuch\": not found".into());
    let err = t.core.tasks.create(NS, request("c1")).await.unwrap_err();
    assert_eq!(err.to_string(), "exec: \"nosuch\": not found");
    assert!(t.core.tasks.list(NS).unwrap().is_empty());
    assert!(!t.dir.0.join("tasks").join(NS).join("c1").exists());

    t.shims.state().spawn_error = None;
    t.core.tasks.create(NS, request("c1")).await.unwrap();
    assert!(matches!(
        t.core.tasks.create(NS, request("../c1")).await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_created_task_deleted_before_start_is_killed_first() {
    let t = Fixture::new("delete-created");
    let mut rx = t.core.events();
    t.core.tasks.create(NS, request("c1")).await.unwrap();
    t.core.tasks.delete(NS, "c1").await.unwrap();
    let exit = next(&mut rx, EventKind::Exit).await;
    assert_eq!(exit.exit_code, Some(128 + 9));
    next(&mut rx, EventKind::Delete).await;
    t.core.tasks.drain_deletes().await;
    assert_eq!(
        t.runtime.calls()[1..],
        [
            Call::Kill {
                id: "c1".into(),
                signal: 9,
                all: true
            },
            Call::Delete { id: "c1".into() }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_back_off_double_and_a_stop_cancels_the_pending_one() {
    let t = Fixture::new("restart");
    let mut rx = t.core.events();
    t.running(restarting("c1", RestartPolicy::Always)).await;
    next(&mut rx, EventKind::Start).await;

    for (restarts, delay_ms) in [(1, 100), (2, 200)] {
        t.shims.exit("c1", 1);
        let exit = next(&mut rx, EventKind::Exit).await;
        assert!(exit.restarting);
        assert!(t.core.tasks.inspect(NS, "c1").unwrap().restarting);
        let exited_at = Instant::now();
        let start = next(&mut rx, EventKind::Start).await;
        let waited = exited_at.elapsed();
        assert_eq!(start.restart_count, restarts);
        assert!(
            waited >= Duration::from_millis(delay_ms)
                && waited < Duration::from_millis(2 * delay_ms),
            "restart {restarts} after {waited:?}"
        );
        assert_eq!(t.core.status("c1"), TaskStatus::Running);
    }

    // Exited again, and stopped while waiting for the restart: that exit is final.
    t.shims.exit("c1", 1);
    assert!(next(&mut rx, EventKind::Exit).await.restarting);
    t.core.tasks.kill(NS, "c1", 15, false, true).await.unwrap();
    let last = next(&mut rx, EventKind::Exit).await;
    assert!(!last.restarting);
    tokio::time::sleep(Duration::from_secs(120)).await; // the paused clock only
    assert!(matches!(
        rx.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
    let info = t.core.tasks.inspect(NS, "c1").unwrap();
    assert_eq!((info.status, info.restart_count), (TaskStatus::Stopped, 2));
    let creates = t
        .runtime
        .commands()
        .iter()
        .filter(|c| **c == "create")
        .count();
    assert_eq!(creates, 3);
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_only_failures_and_only_max_retries_times() {
    let t = Fixture::new("on-failure");
    let mut rx = t.core.events();
    let policy = RestartPolicy::OnFailure { max_retries: 1 };
    t.running(restarting("c1", policy)).await;
    t.shims.exit("c1", 2);
    assert!(next(&mut rx, EventKind::Exit).await.restarting);
    assert_eq!(next(&mut rx, EventKind::Start).await.restart_count, 1);
    t.shims.exit("c1", 2);
    let exit = next(&mut rx, EventKind::Exit).await;
    assert!(!exit.restarting);
    assert_eq!(t.core.status("c1"), TaskStatus::Stopped);

    t.running(restarting("c2", policy)).await;
    t.shims.exit("c2", 0);
    let exit = next(&mut rx, EventKind::Exit).await;
    assert_eq!((exit.id.as_str(), exit.restarting), ("c2", false));
}

#[tokio::test(start_paused = true)]
async fn a_paused_task_is_thawed_when_killed() {
    let t = Fixture::new("pause");
    let mut rx = t.core.events();
    t.running(request("c1")).await;
    assert!(
        t.core
            .tasks
            .set_paused(NS, "c1", true)
            .await
            .unwrap()
            .paused
    );
    t.core.tasks.kill(NS, "c1", 9, false, false).await.unwrap();
    next(&mut rx, EventKind::Exit).await;
    let info = t.core.tasks.inspect(NS, "c1").unwrap();
    assert_eq!((info.status, info.paused), (TaskStatus::Stopped, false));
    assert_eq!(
        t.runtime.commands(),
        ["create", "start", "pause", "kill", "resume"]
    );
    assert!(matches!(
        t.core.tasks.set_paused(NS, "c1", false).await,
        Err(Error::FailedPrecondition(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_failing_runtime_leaves_the_task_as_it_was() {
    let t = Fixture::new("pause-fails");
    t.running(request("c1")).await;
    t.runtime.fail("pause", "the freezer is gone");
    let err = t.core.tasks.set_paused(NS, "c1", true).await.unwrap_err();
    assert!(err.to_string().contains("the freezer is gone"), "{err}");
    assert!(!t.core.tasks.inspect(NS, "c1").unwrap().paused);
}

#[tokio::test(start_paused = true)]
async fn update_applies_limits_to_a_running_task_and_a_new_restart_policy() {
    let t = Fixture::new("update");
    let mut rx = t.core.events();
    t.running(request("c1")).await;
    let limits = serde_json::json!({ "memory": { "limit": 8388608 } });
    let update = UpdateTaskRequest {
        resources: Some(limits.clone()),
        restart: Some(RestartPolicy::Always),
    };
    t.core.tasks.update_task(NS, "c1", update).await.unwrap();
    let Some(Call::Update { id, resources }) = t.runtime.calls().pop() else {
        panic!("no update: {:?}", t.runtime.calls())
    };
    assert_eq!(id, "c1");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&resources).unwrap(),
        limits
    );

    t.shims.exit("c1", 0);
    assert!(next(&mut rx, EventKind::Exit).await.restarting);
    t.core.tasks.kill(NS, "c1", 15, false, true).await.unwrap();
    let limits_when_stopped = UpdateTaskRequest {
        resources: Some(limits),
        restart: None,
    };
    assert!(matches!(
        t.core
            .tasks
            .update_task(NS, "c1", limits_when_stopped)
            .await,
        Err(Error::FailedPrecondition(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn health_checks_run_in_the_task_and_change_its_status() {
    let t = Fixture::new("health");
    let mut rx = t.core.events();
    let check = HealthCheck {
        test: vec!["/bin/sh".into(), "-c".into(), "test -e /ready".into()],
        interval_ms: 1000,
        timeout_ms: 500,
        retries: 2,
        start_period_ms: 0,
    };
    for code in [1, 1, 0] {
        t.runtime.answer_exec(Ok(ExecOutput {
            exit_code: code,
            output: b"checked\n".to_vec(),
        }));
    }
    for _ in 0..2 {
        t.runtime
            .answer_exec(Err(berth_runtime::Error::TimedOut(Duration::from_millis(
                500,
            ))));
    }
    t.running(CreateTaskRequest {
        health: Some(check.clone()),
        ..request("c1")
    })
    .await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(next(&mut rx, EventKind::Health).await.health_status);
    }
    assert_eq!(statuses, ["unhealthy", "healthy", "unhealthy"]);
    // Five checks, one a second.
    assert!(started.elapsed() >= Duration::from_secs(5));
    let health = t.core.tasks.inspect(NS, "c1").unwrap().health.unwrap();
    assert_eq!(health.failing_streak, 2);
    let outputs: Vec<_> = health.log.iter().map(|r| r.output.as_str()).collect();
    assert_eq!(
        outputs,
        [
            "checked\n",
            "checked\n",
            "checked\n",
            "Health check exceeded timeout (500ms)",
            "Health check exceeded timeout (500ms)"
        ]
    );
    let execs: Vec<_> = t
        .runtime
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Exec { id, argv } => Some((id, argv)),
            _ => None,
        })
        .collect();
    assert!(execs.len() >= 5);
    assert!(execs
        .iter()
        .all(|(id, argv)| id == "c1" && *argv == check.test));

    // The loop ends with the process.
    t.shims.exit("c1", 0);
    next(&mut rx, EventKind::Exit).await;
    let checks = t.runtime.calls().len();
    tokio::time::sleep(Duration::from_secs(10)).await; // the paused clock only
    assert_eq!(t.runtime.calls().len(), checks);
}

#[tokio::test(start_paused = true)]
async fn an_exec_task_runs_in_its_running_container() {
    let t = Fixture::new("exec");
    t.running(request("c1")).await;
    let exec = CreateTaskRequest {
        exec_in: Some("c1".into()),
        ..request("e1")
    };
    t.core.tasks.create(NS, exec.clone()).await.unwrap();
    let args = t.shims.args_of("e1");
    assert!(args.exec);
    assert_eq!(args.id, "c1");
    assert!(args.bundle.ends_with("process.json"));
    assert_eq!(t.core.tasks.start(NS, "e1").await.unwrap().pid, 4242);

    let nested = CreateTaskRequest {
        exec_in: Some("e1".into()),
        ..request("e2")
    };
    assert!(matches!(
        t.core.tasks.create(NS, nested).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        t.core.tasks.set_paused(NS, "e1", true).await,
        Err(Error::InvalidArgument(_))
    ));
    let mut rx = t.core.events();
    t.shims.exit("c1", 0);
    while next(&mut rx, EventKind::Exit).await.id != "c1" {}
    let late = CreateTaskRequest {
        exec_in: Some("c1".into()),
        ..request("e3")
    };
    assert!(matches!(
        t.core.tasks.create(NS, late).await,
        Err(Error::FailedPrecondition(_))
    ));
}

/// A runtime whose clock moves only when every task waits, for a core
/// that is stopped (the runtime dropped) and another opened after it.
fn paused_clock() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// A takeover's census vouches for the shims before the old core freezes;
/// a vouched shim that exits before the adoption is still found gone (its
/// exit recorded), and one not vouched for is checked in full.
#[test]
fn a_census_taken_before_the_freeze_is_not_trusted_blindly() {
    let dir = StateDir::new("census");
    let runtime = Recording::new();
    let shims = FakeShims::new(runtime.clone());
    let first = paused_clock();
    first.block_on(async {
        let core = Core::open(&dir, &runtime, &shims);
        for id in ["stays", "goes"] {
            core.tasks.create(NS, request(id)).await.unwrap();
            core.tasks.start(NS, id).await.unwrap();
        }
    });
    drop(first);
    let vouched = super::Vouched::census(&dir.0, shims.as_ref());
    // Started after the census: not vouched for, checked when adopted.
    let late = paused_clock();
    late.block_on(async {
        let core = Core::open(&dir, &runtime, &shims);
        core.tasks.adopt_existing().await;
        core.tasks.create(NS, request("late")).await.unwrap();
        core.tasks.start(NS, "late").await.unwrap();
    });
    drop(late);
    shims.exit("goes", 3);

    let second = paused_clock();
    second.block_on(async {
        let core = Core::open(&dir, &runtime, &shims);
        core.tasks.adopt_vouched(&vouched).await;
        assert_eq!(core.status("stays"), TaskStatus::Running);
        assert_eq!(core.status("late"), TaskStatus::Running);
        let goes = core.tasks.inspect(NS, "goes").unwrap();
        assert_eq!(
            (goes.status, goes.exit_code),
            (TaskStatus::Stopped, Some(3))
        );
    });
}

/// A core that stops (its runtime dropped, as when it is killed) and a new
/// one over the same state directory: live shims are followed again, exits
/// that happened meanwhile are recorded, and half-made tasks are removed.
#[test]
fn a_new_core_adopts_what_the_old_one_left() {
    let dir = StateDir::new("adopt");
    let runtime = Recording::new();
    let shims = FakeShims::new(runtime.clone());

    let first = paused_clock();
    first.block_on(async {
        let core = Core::open(&dir, &runtime, &shims);
        for id in ["live", "exited", "crashed", "half-made"] {
            core.tasks.create(NS, request(id)).await.unwrap();
        }
        for id in ["live", "exited", "crashed"] {
            core.tasks.start(NS, id).await.unwrap();
        }
        // A create cut short between the shim's start and the record.
        std::fs::remove_file(
            dir.0
                .join("tasks")
                .join(NS)
                .join("half-made")
                .join("task.json"),
        )
        .unwrap();
    });
    drop(first);
    shims.exit("exited", 7);
    shims.crash("crashed");
    let before = runtime.calls().len();

    let second = paused_clock();
    second.block_on(async {
        let core = Core::open(&dir, &runtime, &shims);
        let mut rx = core.events();
        core.tasks.adopt_existing().await;
        assert_eq!(core.status("live"), TaskStatus::Running);
        let exited = core.tasks.inspect(NS, "exited").unwrap();
        assert_eq!(
            (exited.status, exited.exit_code),
            (TaskStatus::Stopped, Some(7))
        );
        let crashed = core.tasks.inspect(NS, "crashed").unwrap();
        assert_eq!(
            (crashed.status, crashed.exit_code),
            (TaskStatus::Stopped, Some(255))
        );
        assert!(matches!(
            core.tasks.inspect(NS, "half-made"),
            Err(Error::NotFound(_))
        ));
        assert!(!dir.0.join("tasks").join(NS).join("half-made").exists());
        assert!(!shims.alive("half-made"));
        let mut cleanup = runtime.calls()[before..].to_vec();
        cleanup.sort_by_key(|c| format!("{c:?}"));
        let kill = |id: &str| Call::Kill {
            id: id.into(),
            signal: 9,
            all: true,
        };
        let delete = |id: &str| Call::Delete { id: id.into() };
        assert_eq!(
            cleanup,
            [
                delete("crashed"),
                delete("half-made"),
                kill("crashed"),
                kill("half-made")
            ]
        );

        // The live one is followed: its exit is seen by the new core.
        shims.exit("live", 0);
        let mut exits = Vec::new();
        while !matches!(exits.last(), Some((id, _)) if id == "live") {
            let exit = next(&mut rx, EventKind::Exit).await;
            exits.push((exit.id, exit.exit_code));
        }
        exits.sort();
        let exit = |id: &str, code| (id.to_string(), Some(code));
        assert_eq!(
            exits,
            [exit("crashed", 255), exit("exited", 7), exit("live", 0)]
        );
        // The event sequence goes on from the old core's.
        let (log, _) = core.events.subscribe(0);
        assert!(log.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    });
}

/// A core that hands its tasks to a successor (`Tasks::retire`) records
/// nothing more, not even an exit or a restart due then; the successor,
/// adopting the same directory, records each of them once and continues
/// the event sequence.
#[tokio::test(start_paused = true)]
async fn a_retired_core_leaves_exits_and_restarts_to_its_successor() {
    let t = Fixture::new("retire");
    t.running(request("quiet")).await;
    t.running(request("exits")).await;
    t.running(restarting("restarts", RestartPolicy::Always))
        .await;
    let mut rx = t.core.events();
    // Exited just before: its restart waits out the back-off.
    t.shims.exit("restarts", 1);
    assert!(next(&mut rx, EventKind::Exit).await.restarting);

    t.core.tasks.retire().await;
    let last = t.core.events.last_seq();
    t.shims.exit("exits", 4);
    // Long past the back-off, and the watcher has seen the exit.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        t.core.events.last_seq(),
        last,
        "a retired core recorded an event"
    );
    assert_eq!(t.core.status("exits"), TaskStatus::Running);
    assert_eq!(t.core.status("restarts"), TaskStatus::Stopped);

    let successor = Core::open(&t.dir, &t.runtime, &t.shims);
    let mut rx = successor.events();
    successor.tasks.adopt_existing().await;
    assert_eq!(successor.status("quiet"), TaskStatus::Running);
    let exits = successor.tasks.inspect(NS, "exits").unwrap();
    assert_eq!(
        (exits.status, exits.exit_code),
        (TaskStatus::Stopped, Some(4))
    );
    let restarted = next(&mut rx, EventKind::Start).await;
    assert_eq!(
        (restarted.id.as_str(), restarted.restart_count),
        ("restarts", 1)
    );
    let (log, _) = successor.events.subscribe(0);
    for pair in log.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    let exits_of = |id: &str| {
        log.iter()
            .filter(|e| e.id == id && e.kind == EventKind::Exit)
            .count()
    };
    assert_eq!((exits_of("exits"), exits_of("restarts")), (1, 1));
}
