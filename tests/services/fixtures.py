"""A session fixture per service and per variable it provides, made from `services`.

    service_postgresql  the Started (its .env, .description, .handle)
    database_url        its DATABASE_URL

One server per test session (per xdist worker), stopped at the end of the session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from services import Missing, Started, modules
from tests.services import missing


def _service_fixture(name: str) -> Callable[[], Iterator[Started]]:
    def service() -> Iterator[Started]:
        with contextlib.ExitStack() as stack:
            try:
                started = stack.enter_context(modules()[name].start())
            except Missing as error:
                missing(error)
            yield started

    service.__doc__ = f"{modules()[name].NAME}, started for this test session."
    return pytest.fixture(scope="session", name=f"service_{name}")(service)


def _variable_fixture(name: str, variable: str) -> Callable[..., str]:
    def value(request: pytest.FixtureRequest) -> str:
        return request.getfixturevalue(f"service_{name}").env[variable]

    value.__doc__ = f"{variable} of the session's {modules()[name].NAME}."
    return pytest.fixture(scope="session", name=variable.lower())(value)


for _name, _module in modules().items():
    globals()[f"service_{_name}"] = _service_fixture(_name)
    for _variable in _module.PROVIDES:
        globals()[_variable.lower()] = _variable_fixture(_name, _variable)
