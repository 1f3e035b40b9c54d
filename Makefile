# One-command set-up. Everything goes into $(VENV) (default: .venv in the repo).
#   make install   install the pinned stack (first time ~15 min: mmcv builds from source)
#   make demo      install if needed, generate demo data, train + evaluate det / seg / pose
#   make demo-all  all six demos (also super-resolution, point clouds and Mamba-YOLO)
#   make test      install if needed, run the test suite
#   make docs      regenerate the generated tables of docs/ (plugins, backbone presets, model zoo,
#                  troubleshooting, deployment: the last compiles and exports every backbone,
#                  about an hour on 2 cores)
# Bring your own torch: make install TORCH_SPEC="torch==2.x.y" (or SKIP_TORCH=1 to keep the one you have).
VENV       ?= .venv
PYTHON     ?= python3
TORCH_SPEC ?= torch==2.13.0
MMCV_SPEC  ?= mmcv==2.1.0
MMPOSE_SPEC ?= mmpose==1.3.2
SKIP_TORCH ?= 0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# every install honours the pins (numpy 1.26, opencv 4.10) so nothing is upgraded and downgraded again
PINNED := -c requirements/runtime.txt
STAMP := $(VENV)/.toolkit-installed
REQS := requirements/runtime.txt requirements/tests.txt requirements/peers.txt setup.py Makefile

.PHONY: install demo demo-all test test-fast docs

install: $(STAMP)

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[install] torch ($(TORCH_SPEC)), build tools"
	@if [ "$(SKIP_TORCH)" != "1" ]; then $(PIP) install "$(TORCH_SPEC)"; fi
	@$(PIP) install $(PINNED) "setuptools<81" wheel ninja numpy
	@echo "[install] $(MMCV_SPEC) with ops (built from source the first time: ~11 min on 2 cores, cached by pip afterwards)"
	@$(PY) -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$(MMCV_SPEC)'.split('==')[1]" 2>/dev/null || \
	  MMCV_WITH_OPS=1 $(PIP) install $(PINNED) --no-build-isolation "$(MMCV_SPEC)"
	@echo "[install] mmengine, mmdet, mmsegmentation, mmpose and friends"
	@$(PIP) install -r requirements/runtime.txt -r requirements/tests.txt
	@$(PIP) install --no-deps "$(MMPOSE_SPEC)"
	@echo "[install] peers for the comparisons (timm, natten) into $(VENV)/peers, outside the main environment"
	@$(PIP) install --no-deps --no-build-isolation --upgrade --target $(VENV)/peers -r requirements/peers.txt
	@$(PIP) install --no-deps --no-build-isolation -e .
	@$(PY) -c "import torch, mmcv, mmdet, mmseg, mmpose, plugins; print('[install] ok: torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmseg', mmseg.__version__, '| mmpose', mmpose.__version__)"
	@touch $(STAMP)

test: install
	$(PY) -m pytest tests -q

test-fast: install
	$(PY) -m pytest tests -q -m "not slow"

demo: install
	$(PY) tools/demo.py det seg pose

demo-all: install
	$(PY) tools/demo.py det seg pose sr pcd yolo

docs: install
	$(PY) tools/list_plugins.py --markdown > docs/plugins.md
	$(PY) tools/analysis/backbone_table.py --out docs/backbones.md
	$(PY) tools/analysis/model_zoo.py --out docs/model-zoo.md
	$(PY) tools/analysis/troubleshooting.py --out docs/troubleshooting.md
	OMP_NUM_THREADS=1 $(PY) tools/analysis/deployment_table.py --out docs/deployment.md
