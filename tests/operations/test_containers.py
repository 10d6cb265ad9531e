"""Containers from first principles (docs/operations/containers.md): namespaces give a shell
its own PIDs, mounts, network and hostname while the host sees an ordinary process; a
cgroup memory limit gets a process SIGKILLed by the kernel, an rlimit gets it MemoryError.
Both need root on Linux: the `unshare_bin` fixture skips elsewhere (fails in CI)."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

ns = load_snippet("operations/containers_namespaces")
mem = load_snippet("operations/containers_memory_limit")


def test_inside_the_namespaces_the_shell_is_pid_1_alone_with_lo_and_its_own_hostname(
    unshare_bin,
):
    r = ns.look_inside(unshare_bin)
    assert r.inside.pid == "1" and r.nspid[1] == "1"  # the kernel agrees: 1 inside
    assert r.nspid[0] != "1" and int(r.nspid[0]) > 1  # and an ordinary PID on the host
    assert r.inside.processes == 1 < r.host.processes  # only itself in its /proc
    assert r.inside.interfaces == "lo"
    assert "lo" in r.host.interfaces.split() and len(r.host.interfaces.split()) > 1
    assert r.inside.hostname == "box" != r.host.hostname
    assert r.inside.file == "made-inside" and r.host.file == ""  # its mount, not the host's


def test_what_it_changed_stayed_inside_after_it_exited(unshare_bin):
    r = ns.look_inside(unshare_bin)
    assert r.host_hostname_after == r.host.hostname
    assert r.host_file_after == ""


def test_break_it_a_pid_namespace_without_its_own_proc_still_lists_the_hosts_processes(
    unshare_bin, monkeypatch
):
    monkeypatch.setattr(ns, "NAMESPACES", [n for n in ns.NAMESPACES if n != "--mount-proc"])
    r = ns.look_inside(unshare_bin)
    assert r.inside.pid == "1"  # still PID 1 in its namespace ...
    assert r.inside.processes > 10  # ... but /proc is the host's: it lists the host's PIDs


def test_control_without_a_pid_namespace_the_shell_has_a_host_pid(unshare_bin, monkeypatch):
    keep = [n for n in ns.NAMESPACES if n not in ("--pid", "--fork", "--mount-proc")]
    monkeypatch.setattr(ns, "NAMESPACES", keep)
    r = ns.look_inside(unshare_bin)
    assert r.inside.pid != "1" and r.nspid == [r.inside.pid]  # one namespace: the host's
    assert r.inside.interfaces == "lo" and r.inside.hostname == "box"  # the others still new


def test_past_a_cgroup_limit_the_kernel_kills_the_process_and_except_memoryerror_cannot_help(
    unshare_bin,
):
    limited = mem.run_in_cgroup(64, 128)
    assert limited.exit_status == -9  # SIGKILL from the OOM killer: no handler runs
    assert not limited.said_memory_error  # the program's `except MemoryError` never ran
    assert limited.oom_kills == 1
    assert 8 <= limited.reached_mib < 64  # the interpreter's own pages count too


def test_control_under_a_higher_limit_the_same_program_finishes(unshare_bin):
    roomy = mem.run_in_cgroup(256, 128)
    assert (roomy.exit_status, roomy.reached_mib, roomy.oom_kills) == (0, 128, 0)


def test_an_address_space_rlimit_fails_the_allocation_inside_the_program_instead(unshare_bin):
    capped = mem.run_with_rlimit(64, 128)
    assert capped.exit_status == 0 and capped.said_memory_error
    assert 8 <= capped.reached_mib <= 64
    assert capped.oom_kills is None


@pytest.mark.parametrize("limit", [32, 96])
def test_the_kill_point_follows_the_limit(unshare_bin, limit):
    run = mem.run_in_cgroup(limit, 128)
    assert run.exit_status == -9 and run.reached_mib < limit
    assert run.reached_mib >= limit - 24  # killed near the limit, not at some other cap
