from tf_cyclegan.training.callbacks.progress import RunProgress


def test_run_progress_counts_a_resumed_partial_epoch_from_where_it_stopped():
    progress = RunProgress(steps_per_epoch=5, epoch=2, first_batch=3)
    progress.on_epoch_begin(2)
    progress.on_train_batch_end(0)
    assert (progress.epoch, progress.batch, progress.global_step) == (2, 4, 14)
    progress.on_train_batch_end(1)
    progress.on_epoch_end(2)
    progress.on_epoch_begin(3)
    progress.on_train_batch_end(0)
    assert (progress.epoch, progress.batch, progress.global_step) == (3, 1, 16)
