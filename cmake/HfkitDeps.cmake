# Third-party dependencies: Debian -dev packages, and libtorch from the pinned torch wheel
# (scripts/setup.sh passes its cmake prefix in CMAKE_PREFIX_PATH).
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)

# libtorch: TorchConfig.cmake looks for the CUDA toolkit when the wheel is CUDA-enabled.
if(HFKIT_CUDA)
  set(CUDAToolkit_ROOT /usr/local/cuda CACHE PATH "")
  set(CMAKE_CUDA_COMPILER ${HFKIT_NVCC})
  set(CMAKE_CUDA_ARCHITECTURES "")
  foreach(arch IN LISTS HFKIT_CUDA_ARCHS)
    list(APPEND CMAKE_CUDA_ARCHITECTURES ${arch}-real)
  endforeach()
  list(GET HFKIT_CUDA_ARCHS -1 _newest)
  list(APPEND CMAKE_CUDA_ARCHITECTURES ${_newest}-virtual)
  # CMake 3.25 does not know nvcc's C++20 flags; kernels need no more than C++17.
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_EXTENSIONS OFF)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
# Without an arch list TorchConfig try_runs a GPU probe, which cannot work on a build machine.
set(_torch_archs "")
foreach(arch IN LISTS HFKIT_CUDA_ARCHS)
  math(EXPR _major "${arch} / 10")
  math(EXPR _minor "${arch} % 10")
  list(APPEND _torch_archs "${_major}.${_minor}")
endforeach()
set(TORCH_CUDA_ARCH_LIST "${_torch_archs}" CACHE STRING "Arch list TorchConfig uses (from HFKIT_CUDA_ARCHS)")
set(_hfkit_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")
# Caffe2's config (libtorch_cpu's imported target) sits beside Torch's. A build folder configured
# with an older venv keeps that venv's Caffe2_DIR in its cache and would link its libtorch_cpu.
if(Torch_DIR)
  get_filename_component(_caffe2_dir "${Torch_DIR}/../Caffe2" ABSOLUTE)
  set(Caffe2_DIR "${_caffe2_dir}" CACHE PATH "Caffe2 config of the libtorch in Torch_DIR" FORCE)
endif()
find_package(Torch REQUIRED)
# TorchConfig resets CMAKE_CUDA_ARCHITECTURES; our own kernels (lib/gpu) use HFKIT_CUDA_ARCHS.
set(CMAKE_CUDA_ARCHITECTURES "${_hfkit_cuda_archs}")
# TorchConfig adds flags for all languages; keep only what C++ needs.
set(HFKIT_TORCH_VERSION "${Torch_VERSION}")

# The wheel's libtorch_cuda needs the CUDA/NCCL/cuDNN libraries of its nvidia-* wheels, which are
# newer than /usr/local/cuda's: resolve them at link time (-rpath-link) and put them first in our
# binaries' run path, so one libcudart/libnccl (the wheel's) is loaded at run time.
file(GLOB HFKIT_TORCH_NVIDIA_LIBDIRS LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
set(HFKIT_TORCH_LINK_OPTIONS "")
foreach(dir IN LISTS HFKIT_TORCH_NVIDIA_LIBDIRS)
  get_filename_component(dir "${dir}" REALPATH)
  list(APPEND HFKIT_TORCH_LINK_OPTIONS "LINKER:-rpath-link,${dir}" "LINKER:-rpath,${dir}")
endforeach()
