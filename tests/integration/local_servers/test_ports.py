"""Local mode's port check: a port in use is refused; one whose last connections wait in TIME_WAIT is not."""

from __future__ import annotations

import socket

import pytest

from local.run import LocalModeError, ensure_port_free, free_port


def _leave_in_time_wait(port: int) -> None:
    """A server on `port` that closes its side of a connection first: its end stays in TIME_WAIT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first
        client.recv(1)  # sees the close
        client.close()


def test_a_port_left_in_time_wait_by_the_last_run_is_free() -> None:
    port = free_port()
    _leave_in_time_wait(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the check used to do: refused while TIME_WAIT lasts
    ensure_port_free(port, "listing ai-skills")


def test_a_port_another_program_listens_on_is_refused_with_what_to_do() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(LocalModeError, match=rf"port {port} \(for listing ai-skills\) is already in use"):
            ensure_port_free(port, "listing ai-skills")
