"""Import every module of a sub-package, so that each file's registrations run on import."""
import importlib
import pkgutil


def import_submodules(package_name: str, package_path) -> None:
    """Import ``package_name.<module>`` for every module file in ``package_path``."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith('_'):
            importlib.import_module(f'{package_name}.{info.name}')
