from .._autoimport import import_submodules

import_submodules(__name__, __path__)
