# laic — Makefile
#
#   make            build build/laic (CUDA kernels compiled and linked when nvcc is found)
#   make cpu        build without CUDA (CUDA=0)
#   make test       all CPU tests; the last line is "N passed, N failed, N skipped"
#   make asan       the same tests under AddressSanitizer + UBSan (CPU build, build-asan/)
#   make test-gpu   GPU tests (needs an NVIDIA GPU; exits 77 "waived" without one)
#   make bench      build the benchmark programs in build/bench/
#   make setup      install the Debian packages and the CLIP BPE vocabulary (scripts/setup.sh)
#   make fuzz       libFuzzer harnesses (tests/fuzz/, clang + ASan + UBSan, build-fuzz/), each run
#                   FUZZ_SECONDS (10) from its committed seed corpus; FUZZ=npy,image picks some
#
# Knobs (?=): CUDA=auto|0|1, CUDA_ARCH=90 (sm_90: H100/H200), OPT=-O2, NVCC=nvcc,
#             MPI=auto|0|1 (pkg-config mpi-c: libopenmpi-dev), NCCL=auto|0|1 (nccl.h + libnccl
#             beside the CUDA toolkit or in the system; used only with CUDA and MPI).
# Without MPI the binary is the single-process program (host/comm.c: one rank).

CC      ?= gcc
NVCC    ?= nvcc
CUDA    ?= auto
CUDA_ARCH ?= 90
OPT     ?= -O2
BUILD   ?= build

ifeq ($(filter $(CUDA),auto 0 1),)
  $(error CUDA must be auto, 0 or 1 (got '$(CUDA)'))
endif
MPI     ?= auto
NCCL    ?= auto
ifeq ($(filter $(MPI),auto 0 1),)
  $(error MPI must be auto, 0 or 1 (got '$(MPI)'))
endif
ifeq ($(filter $(NCCL),auto 0 1),)
  $(error NCCL must be auto, 0 or 1 (got '$(NCCL)'))
endif

# --- dependency detection (each printed as ✓/✗ once per make invocation) -------------------
PKGS := inih libcjson libjpeg libpng zlib openblas
HAVE_PKGS := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo 1)
ifneq ($(HAVE_PKGS),1)
  $(info ✗ Debian packages missing: run 'make setup' (or 'bash scripts/setup.sh'))
  $(info $(shell for p in $(PKGS); do pkg-config --exists $$p && echo "  ✓ $$p" || echo "  ✗ $$p"; done))
  $(error missing build dependencies)
endif
# OpenBLAS: prefer Debian's OpenMP build (libopenblas-openmp-dev). It runs its GEMMs on the same
# libgomp thread pool as laic's own loops, instead of a second pthread pool whose idle threads
# spin-yield on the same cores: the ViT-B/32 image encoder ran ~15% faster on 2 cores
# (bench/results/2026-11-23-cpu-image-encoder.md). The rpath makes the binary load that build
# whatever the system's libopenblas.so.0 alternative is.
OPENBLAS_OMP_PC := $(firstword $(wildcard /usr/lib/*/openblas-openmp/pkgconfig/openblas.pc))
ifneq ($(OPENBLAS_OMP_PC),)
  PC_ENV     := PKG_CONFIG_PATH=$(patsubst %/,%,$(dir $(OPENBLAS_OMP_PC)))
  BLAS_RPATH := -Wl,-rpath,$(patsubst %/pkgconfig/,%,$(dir $(OPENBLAS_OMP_PC)))
  BLAS_KIND  := OpenMP build
else
  BLAS_KIND  := pthread build (install libopenblas-openmp-dev for ~15% faster CPU encoders)
endif
PKG_CFLAGS := $(shell $(PC_ENV) pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell $(PC_ENV) pkg-config --libs $(PKGS)) $(BLAS_RPATH)

NVCC_PATH := $(shell command -v $(NVCC) 2>/dev/null)
ifeq ($(CUDA),auto)
  USE_CUDA := $(if $(NVCC_PATH),1,0)
else
  USE_CUDA := $(CUDA)
endif
ifeq ($(USE_CUDA),1)
  ifeq ($(NVCC_PATH),)
    $(error CUDA=1 but '$(NVCC)' was not found on PATH)
  endif
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC_PATH)))
endif

# MPI (optional): Debian's libopenmpi-dev registers pkg-config "mpi-c" (MPICH's "mpich" too).
MPI_PC := $(firstword $(foreach p,mpi-c ompi-c mpich,$(shell pkg-config --exists $(p) 2>/dev/null && echo $(p))))
ifeq ($(MPI),0)
  USE_MPI := 0
else ifneq ($(MPI_PC),)
  USE_MPI := 1
else ifeq ($(MPI),1)
  $(error MPI=1 but no pkg-config entry mpi-c / ompi-c / mpich: install libopenmpi-dev)
else
  USE_MPI := 0
endif
ifeq ($(USE_MPI),1)
  MPI_CFLAGS := $(shell pkg-config --cflags $(MPI_PC)) -DLAIC_MPI=1
  MPI_LIBS   := $(shell pkg-config --libs $(MPI_PC))
endif
# NCCL (optional, CUDA + MPI only): nccl.h and libnccl.so in the CUDA toolkit or the system.
ifeq ($(USE_CUDA)$(USE_MPI),11)
  NCCL_INC := $(firstword $(foreach d,$(CUDA_HOME)/include /usr/include /usr/local/include,$(wildcard $(d)/nccl.h)))
  NCCL_LIB := $(firstword $(foreach d,$(CUDA_HOME)/lib64 /usr/lib/x86_64-linux-gnu /usr/local/lib,$(wildcard $(d)/libnccl.so)))
endif
ifeq ($(NCCL),0)
  USE_NCCL := 0
else ifneq ($(NCCL_INC)$(NCCL_LIB),)
  USE_NCCL := $(if $(and $(NCCL_INC),$(NCCL_LIB)),1,0)
else
  USE_NCCL := 0
endif
ifeq ($(NCCL)$(USE_NCCL),10)
  $(error NCCL=1 but nccl.h / libnccl.so were not found beside $(CUDA_HOME) (it also needs CUDA and MPI))
endif

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -fopenmp \
               -Ihost $(PKG_CFLAGS) -MMD -MP
CFLAGS  ?= $(OPT) -g -march=x86-64-v2
LDLIBS  := $(PKG_LIBS) -lm -fopenmp
ifeq ($(USE_MPI),1)
  CFLAGS_BASE += $(MPI_CFLAGS)
  LDLIBS      += $(MPI_LIBS)
endif

# host/ has one folder per layer (../shared/ARCHITECTURE.md); tests/ mirrors it, tests/gpu/ aside.
HOST_SRC   := $(sort $(shell find host -name '*.c'))
HOST_LIB   := $(filter-out host/cli/main.c,$(HOST_SRC))
TEST_SRC   := $(sort $(filter-out tests/gpu/% tests/fuzz/%,$(shell find tests -name '*.c' -not -path 'tests/fixtures/*')))
TEST_GPU_SRC := $(wildcard tests/gpu/*.c)
CU_SRC     := $(wildcard kernels/*.cu)

ifeq ($(USE_CUDA),1)
  # Every launch, copy and cuBLAS call goes to the calling thread's default stream
  # (cudaStreamPerThread), not the legacy NULL stream: the legacy stream cannot be captured
  # into a CUDA graph (the trainer's step is). C files that call the runtime get the same
  # meaning of stream 0 through the macro.
  # No --use_fast_math: it implies -ftz=true, which flushes subnormal floats to zero in plain
  # adds, multiplies and casts (seen in the PTX), and several ops promise the CPU's bits. IEEE
  # division/sqrt and accurate expf cost nothing measurable in these memory-bound elementwise
  # kernels; the GEMMs are cuBLAS or tensor cores either way.
  CFLAGS_BASE += -DLAIC_CUDA=1 -DCUDA_API_PER_THREAD_DEFAULT_STREAM=1
  NVCCFLAGS ?= -O3 -std=c++17 -Ihost -Ikernels -lineinfo --default-stream per-thread \
               -gencode arch=compute_$(CUDA_ARCH),code=sm_$(CUDA_ARCH) \
               -Xcompiler -Wall,-Werror,-Wno-unused-parameter -Werror all-warnings
  CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcusolver \
               -lcurand -lcudart -lstdc++
  ifeq ($(USE_MPI),1)
    NVCCFLAGS += $(filter -I%,$(MPI_CFLAGS)) -DLAIC_MPI=1
  endif
  ifeq ($(USE_NCCL),1)
    NVCCFLAGS += -I$(dir $(NCCL_INC)) -DLAIC_NCCL=1
    CFLAGS_BASE += -DLAIC_NCCL=1
    CUDA_LIBS += -L$(dir $(NCCL_LIB)) -Wl,-rpath,$(dir $(NCCL_LIB)) -lnccl
  endif
  CU_OBJ    := $(CU_SRC:%.cu=$(BUILD)/%.o)
else
  CU_OBJ    :=
  CUDA_LIBS :=
endif

HOST_OBJ := $(HOST_LIB:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/host/cli/main.o
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all cpu test asan test-gpu bench setup clean deps fuzz fuzz-build
all: deps $(BUILD)/laic $(BUILD)/test_laic

deps:
	@echo "✓ deps: $(PKGS) (OpenBLAS: $(BLAS_KIND))"; \
	 if [ "$(USE_CUDA)" = 1 ]; then echo "✓ CUDA: $(NVCC_PATH) (sm_$(CUDA_ARCH))"; \
	 else echo "✗ CUDA: not built (nvcc not found or CUDA=0)"; fi; \
	 if [ "$(USE_MPI)" = 1 ]; then echo "✓ MPI: $(MPI_PC) $(shell pkg-config --modversion $(MPI_PC) 2>/dev/null) (mpirun -np N ./build/laic run ...)"; \
	 else echo "✗ MPI: not built (no pkg-config mpi-c: apt-get install libopenmpi-dev openmpi-bin, or MPI=0): one process"; fi; \
	 if [ "$(USE_NCCL)" = 1 ]; then echo "✓ NCCL: $(NCCL_LIB) (device-memory collectives)"; \
	 elif [ "$(USE_CUDA)$(USE_MPI)" = 11 ]; then echo "✗ NCCL: not found beside $(CUDA_HOME) (CUDA collectives go through host MPI)"; \
	 else echo "✗ NCCL: not built (needs CUDA and MPI)"; fi

cpu:
	$(MAKE) CUDA=0 all

# Objects depend on a stamp of the flags they were built with, so switching CUDA=0/1 or CFLAGS
# in the same BUILD directory rebuilds everything instead of linking a mix.
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW := $(CC) $(CFLAGS_BASE) $(CFLAGS) | $(NVCC) $(NVCCFLAGS) | cuda=$(USE_CUDA) mpi=$(USE_MPI) nccl=$(USE_NCCL)
$(shell mkdir -p $(BUILD) && (echo '$(FLAGS_NOW)' | cmp -s - $(FLAGS_STAMP) || echo '$(FLAGS_NOW)' > $(FLAGS_STAMP)))

# V=1 prints the full command lines.
Q := $(if $(V),,@)

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) -c $< -o $@

# The elementwise training passes (host/cpu/cpu_ops.h CPU_VECTOR_CLONES: BatchNorm, ReLU, Adam,
# bias sums) are loops -O2's "very cheap" vectoriser model leaves scalar (each needs an epilogue or
# a run-time alias check); the dynamic model vectorises them. -fno-math-errno lets sqrtf be one
# instruction (no errno branch in the loop); the values are unchanged (no -ffast-math).
# -fvect-cost-model is GCC's; clang (the fuzz build) vectorises these loops at -O1+ by its own model.
VEC_SRC := host/cpu/heads.c host/cpu/optim.c host/cpu/matmul.c
CC_IS_CLANG := $(shell $(CC) --version 2>/dev/null | grep -qi clang && echo 1)
VEC_FLAGS := -fno-math-errno $(if $(CC_IS_CLANG),,-fvect-cost-model=dynamic)
$(patsubst %.c,$(BUILD)/%.o,$(VEC_SRC)): CFLAGS_BASE += $(VEC_FLAGS)

$(BUILD)/%.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC  $<")
	$(Q)$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/laic: $(MAIN_OBJ) $(HOST_OBJ) $(CU_OBJ)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)

$(BUILD)/test_laic: $(TEST_OBJ) $(HOST_OBJ) $(CU_OBJ)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)

# Tests run from the repository root (fixtures in tests/fixtures, shared data in ../shared).
test: all
	@LAIC_BIN=$(BUILD)/laic OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 ./$(BUILD)/test_laic $(T)

asan:
	$(MAKE) BUILD=build-asan CUDA=0 OPT=-O1 \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  build-asan/laic build-asan/test_laic
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  LAIC_BIN=build-asan/laic LAIC_ASAN=1 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \
	  ./build-asan/test_laic $(T)

ifeq ($(USE_CUDA),1)
TEST_GPU_OBJ := $(TEST_GPU_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tests/test_main.o $(BUILD)/tests/synth.o
$(BUILD)/test_gpu: $(TEST_GPU_OBJ) $(HOST_OBJ) $(CU_OBJ)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)
test-gpu: all $(BUILD)/test_gpu
	@LAIC_BIN=$(BUILD)/laic ./$(BUILD)/test_gpu $(T)
# `all` builds the GPU test program too: on a machine without a GPU (CI) compiling it is the
# only check the GPU tests get.
all: $(BUILD)/test_gpu
else
test-gpu:
	@echo "test-gpu: CUDA not built (nvcc not found); waived"; exit 77
endif

BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# Benches may call CUDA libraries directly (cuSOLVER/cuBLAS baselines): CUDA headers on the path.
BENCH_CFLAGS := $(if $(filter 1,$(USE_CUDA)),-I$(CUDA_HOME)/include)
$(BUILD)/bench/%: bench/%.c $(HOST_OBJ) $(CU_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(CFLAGS_BASE) $(BENCH_CFLAGS) $(CFLAGS) $< $(HOST_OBJ) $(CU_OBJ) -o $@ $(LDLIBS) $(CUDA_LIBS)
bench: all $(BENCH_BIN)
# ... and the bench programs, for the same reason.
all: $(BENCH_BIN)

setup:
	bash scripts/setup.sh

# --- fuzzing (tests/fuzz/README.md) --------------------------------------------------------------
# The host library is rebuilt with clang, libFuzzer's coverage and ASan + UBSan into its own
# build directory (CPU only); each harness links it. tests/fuzz/run.sh runs them one after the
# other, new inputs into $(FUZZ_BUILD)/corpus/ (the committed seeds are read, never written),
# and fails on the first crash, leak, timeout or UB report (artifact in $(FUZZ_BUILD)/artifacts/).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 10
FUZZ_BUILD   ?= build-fuzz
fuzz_comma   := ,
FUZZ_NAMES   := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CUDA=0 MPI=0 NCCL=0 CC=$(FUZZ_CC) OPT=-O1 \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -DIMAGE_MAX_PIXELS=4194304" \
	  fuzz-build
	@bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(or $(subst $(fuzz_comma), ,$(FUZZ)),$(FUZZ_NAMES))
fuzz-build: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(HOST_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ  $@")
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) -fsanitize=fuzzer $< $(HOST_OBJ) -o $@ $(LDLIBS)

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# report.json records the commit the binary was built from: rebuild run.o on every make.
$(BUILD)/host/run/pipeline.o: CFLAGS_BASE += -DLAIC_GIT_COMMIT=\"$(GIT_COMMIT)\"
$(BUILD)/host/run/pipeline.o: FORCE
$(BUILD)/host/run/report_html.o: CFLAGS_BASE += -DLAIC_GIT_COMMIT=\"$(GIT_COMMIT)\"
$(BUILD)/host/run/report_html.o: FORCE
.PHONY: FORCE
FORCE:
