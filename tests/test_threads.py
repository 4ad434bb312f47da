"""The command line's OpenMP default (cli/common.py): passive waiting unless the user chose a policy."""

from infini_attention.cli.common import configure_threads


def test_passive_unless_the_user_chose_a_policy():
    env = {}
    configure_threads(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    configure_threads(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_it_says_when_it_is_too_late():
    import torch  # noqa: F401  (libgomp is loaded: the variable no longer takes effect)

    assert configure_threads({}) is False
