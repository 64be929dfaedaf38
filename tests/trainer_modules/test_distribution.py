"""The strategy helper: TPU when one resolves, several devices mirrored, else the default."""
import pytest
import tensorflow as tf

from trainer_modules import distribution


class FakeResolver:
    calls = []

    def __init__(self, tpu):
        FakeResolver.calls.append(tpu)
        raise ValueError(f"no TPU named {tpu!r} here")


def test_default_strategy_on_a_cpu_machine():
    strategy = distribution.choose_strategy("auto")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1


def test_auto_tries_the_named_tpu_then_falls_back():
    FakeResolver.calls.clear()
    strategy = distribution.choose_strategy("auto", tpu="my-tpu", resolver_factory=FakeResolver)
    assert FakeResolver.calls == ["my-tpu"]
    assert strategy.num_replicas_in_sync == 1


def test_auto_without_a_tpu_name_never_looks_for_one():
    FakeResolver.calls.clear()
    distribution.choose_strategy("auto", tpu=None, resolver_factory=FakeResolver)
    assert FakeResolver.calls == []


def test_forced_tpu_that_does_not_resolve_is_an_error():
    FakeResolver.calls.clear()
    with pytest.raises(RuntimeError, match="did not resolve"):
        distribution.choose_strategy("tpu", tpu="auto", resolver_factory=FakeResolver)
    assert FakeResolver.calls == [""]  # 'auto' asks the resolver to discover


def test_tpu_strategy_is_built_from_a_resolving_tpu(monkeypatch):
    built = {}
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", lambda r: built.setdefault("connected", r))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", lambda r: built.setdefault("initialized", r))
    class FakeTPUStrategy:
        num_replicas_in_sync = 8

        def __init__(self, resolver):
            self.resolver = resolver

    monkeypatch.setattr(tf.distribute, "TPUStrategy", FakeTPUStrategy)
    strategy = distribution.choose_strategy("auto", tpu="grpc://10.0.0.2:8470", resolver_factory=lambda tpu: f"resolver:{tpu}")
    assert isinstance(strategy, FakeTPUStrategy)
    assert strategy.resolver == "resolver:grpc://10.0.0.2:8470"
    assert built == {"connected": "resolver:grpc://10.0.0.2:8470", "initialized": "resolver:grpc://10.0.0.2:8470"}


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown distribution"):
        distribution.choose_strategy("horovod")
