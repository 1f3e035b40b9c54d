"""Task-specific models the task libraries lack, one sub-package per task."""
import importlib

# Each task sub-package registers its models, datasets, transforms and metrics on import.
for _task in ('pose', 'sr', 'pointcloud'):
    try:
        importlib.import_module(f'{__name__}.{_task}')
    except ModuleNotFoundError as err:  # a task that is not written yet
        if err.name != f'{__name__}.{_task}':
            raise
