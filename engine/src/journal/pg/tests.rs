//! PostgreSQL-only behaviour: migrations racing, a group failing whole, reopening, damage.
//! The behaviour both stores share is in `journal::tests`, run on PostgreSQL there too.

use super::super::tests::{finish, new_task};
use super::super::{Store, StoreError};
use super::test_db::TestSchema;
use super::{schema, PgStore};
use crate::model::Task;
use std::sync::{Arc, Barrier};

#[test]
fn instances_opening_a_fresh_database_at_once_all_start_and_migrate_it_once() {
    let Some(db) = TestSchema::create() else {
        return;
    };
    let db = Arc::new(db);
    let barrier = Arc::new(Barrier::new(4));
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::connect(db.config(), 1).map(drop)
            })
        })
        .collect();
    for open in opens {
        open.join().unwrap().expect("every instance opens");
    }
    let versions: Vec<i32> = db
        .client()
        .query("SELECT version FROM stepwise_schema ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let known: Vec<i32> = schema::MIGRATIONS.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, known, "each migration recorded once");
}

#[test]
fn a_database_migrated_by_a_newer_version_is_refused() {
    let Some(db) = TestSchema::create() else {
        return;
    };
    drop(db.open());
    db.client()
        .batch_execute("INSERT INTO stepwise_schema (version) VALUES (1000)")
        .unwrap();
    let refused = PgStore::connect(db.config(), 1).err().expect("refused");
    assert!(refused.to_string().contains("version 1000"), "{refused}");
}

#[test]
fn a_group_that_fails_part_way_leaves_nothing_behind() {
    let Some(db) = TestSchema::create() else {
        return;
    };
    let store = db.open();
    let holder = new_task(1, 100, Some("taken"));
    store.commit(std::slice::from_ref(&holder)).unwrap();
    // The second task's key is the first one's: the whole group fails.
    let fresh = new_task(2, 101, Some("free"));
    let clash = new_task(3, 102, Some("taken"));
    let failed = store.commit(&[fresh.clone(), clash.clone()]);
    assert!(
        matches!(failed, Err(StoreError::Inconsistent { .. })),
        "{failed:?}"
    );
    for id in [fresh.task.id, clash.task.id] {
        assert_eq!(store.task(&id).unwrap(), None);
        assert!(store.events(&id).unwrap().is_empty());
    }
    assert_eq!(store.task_for_idempotency_key("free").unwrap(), None);
    assert_eq!(
        store.task_for_idempotency_key("taken").unwrap(),
        Some(holder.task.id)
    );
    assert_eq!(store.active().unwrap(), vec![Task::clone(&holder.task)]);
}

#[test]
fn a_group_committed_again_writes_the_same_rows() {
    let Some(db) = TestSchema::create() else {
        return;
    };
    let store = db.open();
    let mut write = new_task(4, 100, Some("again"));
    let mut all = write.events.clone();
    store.commit(std::slice::from_ref(&write)).unwrap();
    store.commit(std::slice::from_ref(&write)).unwrap();
    finish(&mut write);
    all.extend(write.events.clone());
    store.commit(std::slice::from_ref(&write)).unwrap();
    store.commit(std::slice::from_ref(&write)).unwrap();
    assert_eq!(store.events(&write.task.id).unwrap(), all);
    assert_eq!(
        store.task(&write.task.id).unwrap(),
        Some(Task::clone(&write.task))
    );
}

#[test]
fn another_instance_reads_what_one_committed() {
    let Some(db) = TestSchema::create() else {
        return;
    };
    let write = new_task(5, 5, Some("shared"));
    db.open().commit(std::slice::from_ref(&write)).unwrap();
    let other = db.open();
    assert_eq!(other.active().unwrap(), vec![Task::clone(&write.task)]);
    assert_eq!(
        other.task_for_idempotency_key("shared").unwrap(),
        Some(write.task.id)
    );
    assert_eq!(other.create_marks_since(700).unwrap(), 700);
    assert_eq!(db.open().create_marks_since(900).unwrap(), 700, "kept");
}

#[test]
fn a_damaged_record_is_reported_not_skipped() {
    let Some(db) = TestSchema::create() else {
        return;
    };
    let store = db.open();
    let write = new_task(6, 6, None);
    store.commit(std::slice::from_ref(&write)).unwrap();
    let mut client = db.client();
    for table in ["stepwise_tasks SET snapshot", "stepwise_events SET event"] {
        client
            .batch_execute(&format!(
                "UPDATE {table} = set_byte({col}, 4, get_byte({col}, 4) # 64)",
                col = table.rsplit(' ').next().unwrap()
            ))
            .unwrap();
    }
    assert!(matches!(
        store.task(&write.task.id),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.events(&write.task.id),
        Err(StoreError::Corrupt { .. })
    ));
}
