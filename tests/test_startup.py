import gc
import subprocess
import sys

import pytest
from conftest import subprocess_env

from tf_cyclegan.startup import collector_paused_for_import

NOT_IMPORTED = "tf_cyclegan_tests_module_never_imported"


@pytest.fixture
def frozen_objects_restored():
    yield
    gc.unfreeze()
    gc.enable()


def test_collector_is_paused_during_a_first_import_and_what_it_made_is_frozen(frozen_objects_restored):
    before = gc.get_freeze_count()
    with collector_paused_for_import(NOT_IMPORTED):
        assert not gc.isenabled()
        made = [[] for _ in range(1000)]  # objects the garbage collector tracks
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(made)


def test_nothing_changes_for_a_module_already_imported_or_a_collector_switched_off(frozen_objects_restored):
    before = gc.get_freeze_count()
    with collector_paused_for_import("sys"):
        assert gc.isenabled()
    gc.disable()
    with collector_paused_for_import(NOT_IMPORTED):
        assert not gc.isenabled()
    assert not gc.isenabled()  # the user's setting stays
    assert gc.get_freeze_count() == before


def test_a_failed_import_turns_the_collector_back_on_and_freezes_nothing(frozen_objects_restored):
    before = gc.get_freeze_count()
    with pytest.raises(ImportError), collector_paused_for_import(NOT_IMPORTED):
        import tf_cyclegan_tests_module_never_imported  # noqa: F401
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_importing_the_package_first_freezes_tensorflow_and_keeps_the_collector_on():
    code = "import gc, tf_cyclegan; print(gc.isenabled(), gc.get_freeze_count())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    enabled, frozen = done.stdout.split()
    assert enabled == "True" and int(frozen) > 100_000
