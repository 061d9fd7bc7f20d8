"""A person's standing held in a worker's memory: used only while nothing can have changed
it. This process's writes (every way they are made) and, on PostgreSQL, every other
process's (the ``samlad_standing`` channel) let go of it; a read that began before a
change is not remembered; without the channel each read reads it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from consent.audit import AuditLog
from consent.standing import STANDING_TABLES
from consent.standing_memory import CHANNEL, StandingMemory
from consent.store import ConsentStore
from gateway.services import standing_listener, standing_memory
from gateway.settings import Settings
from store.changes import libpq_url, watch_writes
from store.db import Database
from store.tables import ConsentRecord, table_of
from tests.consent.helpers import entry

pytestmark = pytest.mark.anyio

PATIENT, OTHER = "patient-a", "patient-b"
NORD = "SE2321000164-NORD"
NOW = datetime(2031, 5, 1, 12, tzinfo=UTC)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def memory(
    ticks: Ticks, *, max_seconds: float = 60, unlistened: float = 0, people: int = 10
) -> StandingMemory[str]:
    held: StandingMemory[str] = StandingMemory(
        max_seconds=max_seconds, unlistened_seconds=unlistened, people=people, monotonic=ticks
    )
    held.connected()
    return held


# -- the memory's rules, alone


def test_a_standing_is_recalled_by_person_and_asker_until_its_time_is_up() -> None:
    ticks = Ticks()
    held = memory(ticks)
    held.remember(PATIENT, "doc", "theirs", held.token())
    held.remember(PATIENT, None, "the person's", held.token())
    assert held.recall(PATIENT, "doc") == "theirs"
    assert held.recall(PATIENT, None) == "the person's"
    assert held.recall(PATIENT, "another doc") is None
    assert held.recall(OTHER, "doc") is None
    ticks.now += 59.9
    assert held.recall(PATIENT, "doc") == "theirs"
    ticks.now += 0.1
    assert held.recall(PATIENT, "doc") is None


def test_a_read_that_began_before_a_change_is_not_remembered() -> None:
    held = memory(Ticks())
    token = held.token()
    held.heard(OTHER)  # anyone's change: the read may be from before it
    held.remember(PATIENT, "doc", "read before", token)
    assert held.recall(PATIENT, "doc") is None
    held.remember(PATIENT, "doc", "read after", held.token())
    assert held.recall(PATIENT, "doc") == "read after"


def test_a_change_heard_of_forgets_that_person_and_an_emptied_table_everyone() -> None:
    held = memory(Ticks())
    for person in (PATIENT, OTHER):
        held.remember(person, "doc", person, held.token())
    held.heard(PATIENT)
    assert (held.recall(PATIENT, "doc"), held.recall(OTHER, "doc")) == (None, OTHER)
    held.heard("")
    assert held.recall(OTHER, "doc") is None


def test_nothing_is_used_or_remembered_while_a_write_of_this_process_is_under_way() -> None:
    held = memory(Ticks())
    held.remember(PATIENT, "doc", "before", held.token())
    held.writing()
    assert held.recall(PATIENT, "doc") is None
    held.remember(PATIENT, "doc", "during", held.token())
    assert held.recall(PATIENT, "doc") is None
    token = held.token()
    held.written()
    held.remember(PATIENT, "doc", "begun during", token)
    assert held.recall(PATIENT, "doc") is None
    held.remember(PATIENT, "doc", "after", held.token())
    assert held.recall(PATIENT, "doc") == "after"


def test_without_the_channel_a_standing_is_used_for_the_shorter_bound_only() -> None:
    ticks = Ticks()
    held = memory(ticks, unlistened=1.0)
    held.remember(PATIENT, "doc", "theirs", held.token())
    held.disconnected()
    assert held.recall(PATIENT, "doc") is None  # forgotten as the channel dropped
    held.remember(PATIENT, "doc", "unlistened", held.token())
    ticks.now += 0.9
    assert held.recall(PATIENT, "doc") == "unlistened"
    ticks.now += 0.1
    assert held.recall(PATIENT, "doc") is None

    none = memory(ticks, unlistened=0.0)
    none.disconnected()
    none.remember(PATIENT, "doc", "theirs", none.token())
    assert none.recall(PATIENT, "doc") is None


def test_the_most_recently_read_people_are_held_and_no_more() -> None:
    held = memory(Ticks(), people=2)
    for person in ("one", "two"):
        held.remember(person, None, person, held.token())
    assert held.recall("one", None) == "one"  # now the most recent
    held.remember("three", None, "three", held.token())
    assert [held.recall(p, None) for p in ("one", "two", "three")] == ["one", None, "three"]


# -- this process's writes, every way they are made


class Told:
    def __init__(self) -> None:
        self.said: list[str] = []

    def writing(self) -> None:
        self.said.append("writing")

    def written(self) -> None:
        self.said.append("written")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def test_every_way_of_writing_to_a_standing_table_is_told_of_once_it_ended(
    db: Database,
) -> None:
    told = Told()
    watch_writes(db.engine, STANDING_TABLES, told)
    store = ConsentStore(db, clock=lambda: NOW)

    await store.standing(PATIENT, None, NOW)  # a read: nothing to tell
    assert told.said == []

    consent = await store.grant(PATIENT, "care-provider", NORD, None, None)  # a session
    assert told.said == ["writing", "written"]
    log = AuditLog(db)
    await store.withdraw(consent.id, logged=(log, entry(PATIENT, action="consent-withdraw")))
    assert told.said == ["writing", "written"] * 2  # with the access log's entry

    async def undone(conn: AsyncConnection) -> None:
        values = consent.model_dump() | {"id": "another"}
        await conn.execute(insert(table_of(ConsentRecord)).values(**values))
        raise RuntimeError("changed its mind")

    with pytest.raises(RuntimeError):
        await db.write(undone)
    assert told.said == ["writing", "written"] * 3  # rolled back: ended all the same

    await log.append(entry(OTHER))  # a write to other tables only
    assert told.said == ["writing", "written"] * 3


async def test_a_change_made_by_this_process_is_seen_by_its_next_read(db: Database) -> None:
    settings = Settings(dev_mode=True, database_url=db.url, standing_memory_sqlite_seconds=60)
    store = ConsentStore(db, clock=lambda: NOW, memory=standing_memory(db, settings))
    assert store.memory is not None
    store.memory.connected()  # as its listener would say on PostgreSQL
    statements = count_statements(db)

    assert (await store.standing(PATIENT, NORD, NOW)).consents == ()
    read = len(statements)
    assert (await store.standing(PATIENT, NORD, NOW)).consents == ()
    assert len(statements) == read  # held: no statement

    consent = await store.grant(PATIENT, "care-provider", NORD, None, None)
    assert [c.id for c in (await store.standing(PATIENT, NORD, NOW)).consents] == [consent.id]
    await store.withdraw(consent.id)
    (withdrawn,) = (await store.standing(PATIENT, NORD, NOW)).consents
    assert withdrawn.withdrawn_at is not None


def count_statements(db: Database) -> list[str]:
    statements: list[str] = []

    def sent(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", sent)
    return statements


# -- every process's writes: PostgreSQL's channel


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_change_by_another_process_is_heard_and_a_dropped_channel_falls_back(
    database_url: str,
) -> None:
    """Two workers on one database: what one changes, the other forgets as it commits;
    while the other's channel is down it reads on every request, and once listening again
    it holds standings again."""
    settings = Settings(dev_mode=True, database_url=database_url)
    this, other = Database(database_url), Database(database_url)
    store = ConsentStore(this, clock=lambda: NOW, memory=standing_memory(this, settings))
    elsewhere = ConsentStore(other, clock=lambda: NOW)
    assert store.memory is not None
    listener = standing_listener(store.memory, this)
    assert listener is not None
    stop = asyncio.Event()

    async def pause(seconds: float) -> bool:
        await asyncio.sleep(seconds)
        return stop.is_set()

    listening = asyncio.create_task(listener.run(pause))
    held = store.memory
    try:
        await eventually(lambda: held.listening)
        await store.standing(PATIENT, NORD, NOW)
        await store.standing(OTHER, NORD, NOW)
        assert held.recall(PATIENT, NORD) is not None

        consent = await elsewhere.grant(PATIENT, "care-provider", NORD, None, None)
        await eventually(lambda: held.recall(PATIENT, NORD) is None)
        assert held.recall(OTHER, NORD) is not None  # only that person's went
        assert [c.id for c in (await store.standing(PATIENT, NORD, NOW)).consents] == [consent.id]

        # The channel dropped: nothing held, every read reads.
        await terminate_listeners(database_url)
        await eventually(lambda: not held.listening)
        assert held.recall(OTHER, NORD) is None
        await elsewhere.withdraw(consent.id)
        (withdrawn,) = (await store.standing(PATIENT, NORD, NOW)).consents
        assert withdrawn.withdrawn_at is not None
        assert held.recall(PATIENT, NORD) is None  # read, not held

        # Listening again (after its one second's pause): held again.
        await eventually(lambda: held.listening)
        await store.standing(PATIENT, NORD, NOW)
        assert held.recall(PATIENT, NORD) is not None
    finally:
        stop.set()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await this.dispose()
        await other.dispose()


async def terminate_listeners(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as admin:
        cursor = await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (f"samlad-{CHANNEL}",),
        )
        assert await cursor.fetchall(), "no listener connected"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_channel_names_people_by_their_opaque_id_only(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with await psycopg.AsyncConnection.connect(
            libpq_url(database_url), autocommit=True
        ) as listener:
            await listener.execute(f"LISTEN {CHANNEL}")
            await ConsentStore(db, clock=lambda: NOW).block(PATIENT, "care-unit", NORD)
            payloads = [note.payload async for note in listener.notifies(timeout=5, stop_after=1)]
    finally:
        await db.dispose()
    assert payloads == [PATIENT]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_every_table_of_the_standing_tells_of_its_changes(database_url: str) -> None:
    """A table added to the standing needs its trigger (a migration), or a change to it
    would go unheard by other processes."""
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        cursor = await conn.execute(
            "SELECT DISTINCT event_object_table FROM information_schema.triggers"
            " WHERE action_statement LIKE %s",
            ("%samlad_standing_changed%",),
        )
        told = {row[0] for row in await cursor.fetchall()}
    assert told == STANDING_TABLES
