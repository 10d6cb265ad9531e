"""Consistent hashing (docs/proxies/consistent-hashing.md): the model of key placement
(deterministic: a fixed hash, fixed keys), and real HAProxy `balance uri`."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

model = load_snippet("proxies/hashing_model")
real = load_snippet("proxies/hashing_haproxy")


@pytest.mark.parametrize("scheme", ["ring", "jump"])
def test_growing_10_to_11_moves_about_one_eleventh_and_only_to_the_new_node(scheme):
    place = getattr(model, scheme)
    assert 0.07 < model.moved(place, 10, 11) < 0.12  # ideal 1/11 = 0.091
    assert model.moved_only_to_the_new_node(place, 10)


def test_the_control_hash_mod_n_moves_about_ten_elevenths():
    assert model.moved(model.modulo, 10, 11) > 0.85  # ideal 10/11 = 0.909
    assert not model.moved_only_to_the_new_node(model.modulo, 10)


def test_virtual_nodes_even_out_the_ring_and_the_trend_holds_at_every_size():
    spread = [model.max_over_mean(model.ring(10, v), 10) for v in (1, 10, 100, 1000)]
    assert spread == sorted(spread, reverse=True), spread  # more vnodes, more even
    assert spread[0] > 2.0 and spread[-1] < 1.1, spread  # Break it: 1 vnode per node
    assert model.max_over_mean(model.jump(10), 10) < 1.1


@pytest.fixture(scope="module")
def backends(haproxy_bin):
    started = real.start_backends(11)
    yield started
    real.stop_backends(started)


def test_haproxy_consistent_moves_about_one_eleventh_onto_the_new_server(backends):
    fraction, where = real.grow("consistent", backends)
    assert 0.05 < fraction < 0.15 and set(where) == {"s11"}, (fraction, where)


def test_haproxy_map_based_moves_most_uris_between_old_servers(backends):
    """The control: the same URIs, servers and requests; only hash-type differs."""
    fraction, where = real.grow("map-based", backends)
    assert fraction > 0.7 and len(where) > 5, (fraction, where)


def test_break_it_inserting_a_server_first_shifts_every_id(backends):
    ports = [b.server_address[1] for b in backends]
    ten = real.placement("consistent", ports[:10])
    shifted, _ = real.grow("consistent", backends, ten, new_first=True)
    pinned, where = real.grow("consistent", backends, ten, new_first=True, pin_ids=True)
    assert shifted > 0.7, shifted  # ids follow position: everyone's points moved
    assert pinned < 0.15 and set(where) == {"s11"}, (pinned, where)
