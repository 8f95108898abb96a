// Modules, kernels, graphs and launches. A launch occupies the device's shared timeline for its
// simulated duration: the function's cost per block times the number of blocks. A built-in
// kernel (kernels.h) also runs, at the launch, on the memory its parameters point to.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "export.h"
#include "guards.h"
#include "handles.h"
#include "mockcuda/mockcuda.h"
#include "runtime.h"

using mockcuda::Function;
using mockcuda::Graph;
using mockcuda::KernelNode;
using mockcuda::Module;
using mockcuda::Process;
using mockcuda::Stream;
using mockcuda::process;

namespace {

constexpr double kDefaultNsPerBlock = 1000.0;
constexpr unsigned long long kMaxThreadsPerBlock = 1024;

// "sleep_us_<N>" / "sleep_ns_<N>" anywhere in the name (so mangled names work too).
double cost_from_name(const std::string& name) {
    struct Unit {
        const char* tag;
        double ns;
    };
    for (const Unit unit : {Unit{"sleep_us_", 1000.0}, Unit{"sleep_ns_", 1.0}}) {
        const size_t at = name.find(unit.tag);
        if (at != std::string::npos) {
            const char* digits = name.c_str() + at + std::strlen(unit.tag);
            if (*digits >= '0' && *digits <= '9') {
                return std::strtod(digits, nullptr) * unit.ns;
            }
        }
    }
    return kDefaultNsPerBlock;
}

// The parameter values of a launch of `kernel`, packed at their offsets, from kernelParams
// (a pointer to each value) or from `extra` (a buffer holding them all). A kernel that is not
// built in reads none.
CUresult pack_args(const mockcuda::Kernel* kernel, void** params, void** extra,
                   std::vector<unsigned char>& args) {
    if (kernel == nullptr) {
        return CUDA_SUCCESS;
    }
    if ((params == nullptr) == (extra == nullptr)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    args.assign(kernel->args_size(), 0);
    if (params != nullptr) {
        for (size_t i = 0; i < kernel->params.size(); ++i) {
            if (params[i] == nullptr) {
                return CUDA_ERROR_INVALID_VALUE;
            }
            std::memcpy(args.data() + kernel->params[i].offset, params[i], kernel->params[i].size);
        }
        return CUDA_SUCCESS;
    }
    const void* buffer = nullptr;
    const size_t* size = nullptr;
    for (size_t i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
        if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) {
            buffer = extra[i + 1];
        } else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) {
            size = static_cast<const size_t*>(extra[i + 1]);
        } else {
            return CUDA_ERROR_INVALID_VALUE;
        }
    }
    if (buffer == nullptr || size == nullptr || *size < args.size()) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    std::memcpy(args.data(), buffer, args.size());
    return CUDA_SUCCESS;
}

// Validates a launch's function, shape and parameters; what it runs in `node`.
CUresult make_node(const Process& p, CUfunction f, const unsigned int grid[3],
                   const unsigned int block[3], void** params, void** extra, KernelNode& node) {
    const Function* function = mockcuda::lookup(p.functions, f);
    if (function == nullptr) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || block[0] == 0 || block[1] == 0 ||
        block[2] == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    const unsigned long long threads =
        static_cast<unsigned long long>(block[0]) * block[1] * block[2];
    if (threads > kMaxThreadsPerBlock) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    const double blocks = static_cast<double>(grid[0]) * grid[1] * grid[2];
    node.kernel = function->kernel;
    node.ns = static_cast<int64_t>(function->ns_per_block * blocks);
    return pack_args(function->kernel, params, extra, node.args);
}

// Runs a launch on `stream`, or adds it to the graph the stream is capturing. The kernel
// reads and writes memory at once; its time is queued on the device.
CUresult submit(Process& p, Stream* stream, const KernelNode& node) {
    if (stream->capture) {
        stream->capture->nodes.push_back(node);
        return CUDA_SUCCESS;
    }
    if (node.kernel != nullptr) {
        uintptr_t bad = 0;
        const mockcuda::RangeCheck check = [&](uint64_t ptr, uint64_t bytes) {
            return mockcuda::device_accessible(p, ptr, bytes, bad);
        };
        if (!node.kernel->run(node.args.data(), check)) {
            return mockcuda::fault(p, bad);
        }
    }
    mockcuda::queue_work(p, stream, node.ns);
    return CUDA_SUCCESS;
}

CUresult launch(CUfunction f, const unsigned int grid[3], const unsigned int block[3],
                CUstream hStream, void** params, void** extra) {
    return mockcuda::with_context([&](Process& p, CUctx_st* ctx) {
        KernelNode node{};
        if (CUresult r = make_node(p, f, grid, block, params, extra, node)) {
            return r;
        }
        Stream* stream = nullptr;
        if (CUresult r = mockcuda::resolve_stream(p, hStream, ctx, stream)) {
            return r;
        }
        return submit(p, stream, node);
    });
}

// The exported launch entry points and their per-thread variants all land in these, never in
// one another: a call through an exported name could be interposed by a preloaded library.
// A cooperative launch is a plain one: the mock has no grid-wide synchronisation to honour.
CUresult launch_kernel(CUfunction f, unsigned int gridX, unsigned int gridY, unsigned int gridZ,
                       unsigned int blockX, unsigned int blockY, unsigned int blockZ,
                       CUstream hStream, void** params, void** extra) {
    const unsigned int grid[3] = {gridX, gridY, gridZ};
    const unsigned int block[3] = {blockX, blockY, blockZ};
    return launch(f, grid, block, hStream, params, extra);
}

CUresult launch_kernel_ex(const CUlaunchConfig* config, CUfunction f, void** params,
                          void** extra) {
    if (config == nullptr) {
        return process().initialized ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_INITIALIZED;
    }
    const unsigned int grid[3] = {config->gridDimX, config->gridDimY, config->gridDimZ};
    const unsigned int block[3] = {config->blockDimX, config->blockDimY, config->blockDimZ};
    return launch(f, grid, block, config->hStream, params, extra);
}

CUresult instantiate(CUgraphExec* exec, CUgraph handle) {
    return mockcuda::with_initialized([&](Process& p) {
        const Graph* graph = mockcuda::lookup(p.graphs, handle);
        if (exec == nullptr || graph == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        // A copy: later edits to the graph do not reach the instance.
        return mockcuda::publish(p.graph_execs, new Graph(*graph), exec);
    });
}

// The 11.0 signature, also exported under its original unversioned name.
CUresult instantiate_with_log(CUgraphExec* exec, CUgraph graph, char* logBuffer,
                              size_t bufferSize) {
    if (logBuffer != nullptr && bufferSize > 0) {
        logBuffer[0] = '\0';
    }
    return instantiate(exec, graph);
}

CUresult graph_launch(CUgraphExec handle, CUstream hStream) {
    return mockcuda::with_context([&](Process& p, CUctx_st* ctx) {
        const Graph* instance = mockcuda::lookup(p.graph_execs, handle);
        if (instance == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        Stream* stream = nullptr;
        if (CUresult r = mockcuda::resolve_stream(p, hStream, ctx, stream)) {
            return r;
        }
        for (const KernelNode& node : instance->nodes) {
            if (CUresult r = submit(p, stream, node)) {
                return r;
            }
        }
        return CUDA_SUCCESS;
    });
}

}  // namespace

MOCK_API CUresult cuModuleLoadData(CUmodule* module, const void* image) {
    return mockcuda::with_context([&](Process& p, CUctx_st*) {
        if (module == nullptr || image == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        return mockcuda::publish(p.modules, new Module(), module);
    });
}

MOCK_API CUresult cuModuleUnload(CUmodule handle) {
    return mockcuda::with_initialized([&](Process& p) {
        const Module* module = mockcuda::lookup(p.modules, handle);
        if (module == nullptr) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        for (const auto& function : module->functions) {
            p.functions.erase(function.get());
        }
        return mockcuda::destroy(p.modules, handle, CUDA_ERROR_INVALID_HANDLE);
    });
}

MOCK_API CUresult cuModuleGetFunction(CUfunction* func, CUmodule handle, const char* name) {
    return mockcuda::with_initialized([&](Process& p) {
        if (func == nullptr || name == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        Module* module = mockcuda::lookup(p.modules, handle);
        if (module == nullptr) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        for (const auto& function : module->functions) {
            if (function->name == name) {
                *func = reinterpret_cast<CUfunction>(function.get());
                return CUDA_SUCCESS;
            }
        }
        module->functions.push_back(std::make_unique<Function>(
            Function{name, cost_from_name(name), mockcuda::find_kernel(name)}));
        return mockcuda::publish(p.functions, module->functions.back().get(), func);
    });
}

MOCK_API CUresult cuFuncGetParamInfo(CUfunction func, size_t paramIndex, size_t* paramOffset,
                                     size_t* paramSize) {
    if (mockcuda::driver_version() < 12040) {
        return CUDA_ERROR_NOT_SUPPORTED;  // as a driver older than the call
    }
    return mockcuda::with_initialized([&](Process& p) {
        const Function* function = mockcuda::lookup(p.functions, func);
        if (function == nullptr) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        if (paramOffset == nullptr || paramSize == nullptr || function->kernel == nullptr ||
            paramIndex >= function->kernel->params.size()) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *paramOffset = function->kernel->params[paramIndex].offset;
        *paramSize = function->kernel->params[paramIndex].size;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult mockcudaSetKernelCost(CUfunction func, double nsPerBlock) {
    return mockcuda::with_initialized([&](Process& p) {
        Function* function = mockcuda::lookup(p.functions, func);
        if (function == nullptr) {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        if (!std::isfinite(nsPerBlock) || nsPerBlock < 0) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        function->ns_per_block = nsPerBlock;
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuLaunchKernel(CUfunction f, unsigned int gridX, unsigned int gridY,
                                 unsigned int gridZ, unsigned int blockX, unsigned int blockY,
                                 unsigned int blockZ, unsigned int sharedMemBytes,
                                 CUstream hStream, void** params, void** extra) {
    (void)sharedMemBytes;
    return launch_kernel(f, gridX, gridY, gridZ, blockX, blockY, blockZ, hStream, params, extra);
}

MOCK_API CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridX, unsigned int gridY,
                                      unsigned int gridZ, unsigned int blockX,
                                      unsigned int blockY, unsigned int blockZ,
                                      unsigned int sharedMemBytes, CUstream hStream,
                                      void** params, void** extra) {
    (void)sharedMemBytes;
    return launch_kernel(f, gridX, gridY, gridZ, blockX, blockY, blockZ, hStream, params, extra);
}

MOCK_API CUresult cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction f, void** params,
                                   void** extra) {
    return launch_kernel_ex(config, f, params, extra);
}

MOCK_API CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig* config, CUfunction f,
                                        void** params, void** extra) {
    return launch_kernel_ex(config, f, params, extra);
}

MOCK_API CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridX, unsigned int gridY,
                                            unsigned int gridZ, unsigned int blockX,
                                            unsigned int blockY, unsigned int blockZ,
                                            unsigned int sharedMemBytes, CUstream hStream,
                                            void** params) {
    (void)sharedMemBytes;
    return launch_kernel(f, gridX, gridY, gridZ, blockX, blockY, blockZ, hStream, params, nullptr);
}

MOCK_API CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridX,
                                                 unsigned int gridY, unsigned int gridZ,
                                                 unsigned int blockX, unsigned int blockY,
                                                 unsigned int blockZ, unsigned int sharedMemBytes,
                                                 CUstream hStream, void** params) {
    (void)sharedMemBytes;
    return launch_kernel(f, gridX, gridY, gridZ, blockX, blockY, blockZ, hStream, params, nullptr);
}

MOCK_API CUresult cuGraphCreate(CUgraph* graph, unsigned int flags) {
    return mockcuda::with_initialized([&](Process& p) {
        if (graph == nullptr || flags != 0) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        return mockcuda::publish(p.graphs, new Graph(), graph);
    });
}

MOCK_API CUresult cuGraphDestroy(CUgraph handle) {
    return mockcuda::with_initialized([&](Process& p) {
        return mockcuda::destroy(p.graphs, handle, CUDA_ERROR_INVALID_VALUE);
    });
}

// Nodes run in insertion order: the timeline is serial, so dependencies change nothing.
MOCK_API CUresult cuGraphAddKernelNode_v2(CUgraphNode* node, CUgraph handle,
                                          const CUgraphNode* deps, size_t numDeps,
                                          const CUDA_KERNEL_NODE_PARAMS_v2* params) {
    return mockcuda::with_initialized([&](Process& p) {
        Graph* graph = mockcuda::lookup(p.graphs, handle);
        if (node == nullptr || params == nullptr || graph == nullptr ||
            (numDeps > 0 && deps == nullptr)) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        const unsigned int grid[3] = {params->gridDimX, params->gridDimY, params->gridDimZ};
        const unsigned int block[3] = {params->blockDimX, params->blockDimY, params->blockDimZ};
        KernelNode added{};
        if (make_node(p, params->func, grid, block, params->kernelParams, params->extra, added) !=
            CUDA_SUCCESS) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        graph->nodes.push_back(std::move(added));
        *node = reinterpret_cast<CUgraphNode>(graph->nodes.size());
        return CUDA_SUCCESS;
    });
}

MOCK_API CUresult cuGraphInstantiateWithFlags(CUgraphExec* exec, CUgraph handle,
                                              unsigned long long flags) {
    (void)flags;
    return instantiate(exec, handle);
}

MOCK_API CUresult cuGraphInstantiate_v2(CUgraphExec* exec, CUgraph graph, CUgraphNode* errorNode,
                                        char* logBuffer, size_t bufferSize) {
    (void)errorNode;
    return instantiate_with_log(exec, graph, logBuffer, bufferSize);
}

MOCK_API CUresult cuGraphInstantiate(CUgraphExec* exec, CUgraph graph, CUgraphNode* errorNode,
                                     char* logBuffer, size_t bufferSize) {
    (void)errorNode;
    return instantiate_with_log(exec, graph, logBuffer, bufferSize);
}

MOCK_API CUresult cuGraphExecDestroy(CUgraphExec handle) {
    return mockcuda::with_initialized([&](Process& p) {
        return mockcuda::destroy(p.graph_execs, handle, CUDA_ERROR_INVALID_VALUE);
    });
}

MOCK_API CUresult cuGraphLaunch(CUgraphExec handle, CUstream hStream) {
    return graph_launch(handle, hStream);
}

MOCK_API CUresult cuGraphLaunch_ptsz(CUgraphExec handle, CUstream hStream) {
    return graph_launch(handle, hStream);
}

MOCK_API CUresult mockcudaLastFault(unsigned long long* address) {
    return mockcuda::with_initialized([&](Process& p) {
        if (address == nullptr) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *address = p.fault_address;
        return CUDA_SUCCESS;
    });
}
