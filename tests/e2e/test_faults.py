"""The pipeline survives its parts going away: Swift stopping during a publish, and pman
restarting mid-job while a second pman process serves the same cluster."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.support.pipeline import (
    MANIFEST,
    is_waiting,
    manifest,
    outputs,
    pman_process,
    publish_through_a_swift_outage,
    waiting_job,
)
from tests.support.rest import PmanClient, delete_jobs
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault


def test_swift_stopping_during_the_publish_is_retried_and_the_job_succeeds(
    pman: PmanClient, bucket, swift_server, local_cluster, shared_dir
):
    flag = shared_dir / "go"
    jid = pman.submit(waiting_job(bucket, flag))["jid"]
    pman.wait(jid, is_waiting)
    final = publish_through_a_swift_outage(pman, local_cluster, swift_server, jid, flag)
    assert (final["status"], final["message"]) == ("finishedSuccessfully", "finished")
    connection = swift_server.connection()
    assert set(outputs(connection, bucket, f"out-{jid}")) == {"result.txt", MANIFEST}
    assert manifest(connection, bucket, f"out-{jid}")["processor"]["exit_code"] == 0


def test_two_pmans_answer_the_same_and_a_restart_mid_job_loses_nothing(
    bucket, secret, local_cluster, tmp_path, shared_dir
):
    flag = shared_dir / "go"
    with ExitStack() as stack:
        first = stack.enter_context(pman_process(local_cluster, secret, tmp_path))
        second = stack.enter_context(pman_process(local_cluster, secret, tmp_path))
        one, two = PmanClient(first.url), PmanClient(second.url)
        jid = one.submit(waiting_job(bucket, flag))["jid"]
        try:
            running, _ = one.wait(jid, is_waiting)
            seen_by_two, _ = two.wait(jid, is_waiting)
            assert seen_by_two == running == one.get(jid).json()

            first.stop()  # pman goes away mid-job; the job runs on
            flag.touch()
            final, _ = two.wait(jid)
            assert final["status"] == "finishedSuccessfully"

            restarted = stack.enter_context(
                pman_process(local_cluster, secret, tmp_path, port=first.port)
            )
            assert restarted.url == first.url
            assert one.get(jid).json() == final == two.get(jid).json()
            assert "waiting for the flag" in final["logs"]
            assert "done" in final["logs"]
            assert one.delete(jid).status_code == 204
        finally:
            delete_jobs(local_cluster, [jid])
        eventually(
            lambda: two.get(jid).status_code == 404,
            timeout=10,
            interval=0.05,
            what="the other pman seeing the delete",
        )
