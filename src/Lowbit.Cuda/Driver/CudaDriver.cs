using System.Runtime.InteropServices;

namespace Lowbit.Cuda.Driver;

/// <summary>
/// The few CUDA driver API calls ILGPU does not wrap (P/Invoke into the driver's libcuda, which ILGPU has
/// already loaded and initialised): stream capture into CUDA graphs, and loading PTX text of our own
/// (tensor-core kernels) with <c>cuModuleLoadData</c> + <c>cuLaunchKernel</c>. Handles are the driver's
/// (<c>CUstream</c> is ILGPU's <c>CudaStream.StreamPtr</c>). Every call goes through <see cref="Check"/>.
/// </summary>
public static unsafe partial class CudaDriver
{
    private const string Library = "cuda";

    /// <summary>CU_STREAM_CAPTURE_MODE_RELAXED: other threads may use the driver while a capture runs.</summary>
    public const int CaptureModeRelaxed = 2;

    /// <summary>CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.</summary>
    public const int FunctionAttributeMaxDynamicSharedBytes = 8;

    /// <summary>CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: percent of L1 to give to shared memory.</summary>
    public const int FunctionAttributePreferredSharedCarveout = 9;

    /// <summary>CU_FUNC_ATTRIBUTE_NUM_REGS and CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES (spills show as local bytes).</summary>
    public const int FunctionAttributeRegisters = 4, FunctionAttributeLocalBytes = 3;

    /// <summary>CUjit_option values for <see cref="cuModuleLoadDataEx"/>: log buffers (the size options are in and out:
    /// buffer size in, bytes written out) and verbose logging (ptxas prints registers and spills).</summary>
    public const int JitInfoLogBuffer = 3, JitInfoLogBufferBytes = 4, JitErrorLogBuffer = 5, JitErrorLogBufferBytes = 6, JitLogVerbose = 12;

    /// <summary>The driver is libcuda.so.1 on Linux (the unversioned name ships only with the toolkit) and
    /// nvcuda.dll on Windows.</summary>
    static CudaDriver() =>
        NativeLibrary.SetDllImportResolver(typeof(CudaDriver).Assembly, static (name, assembly, path) =>
        {
            if (name != Library)
                return 0;
            foreach (string candidate in OperatingSystem.IsWindows() ? ["nvcuda.dll"] : new[] { "libcuda.so.1", "libcuda.so" })
            {
                if (NativeLibrary.TryLoad(candidate, assembly, path, out nint handle))
                    return handle;
            }
            return 0;
        });

    /// <summary>Throws <see cref="InvalidOperationException"/> naming the call and the driver's message
    /// when <paramref name="result"/> is not CUDA_SUCCESS.</summary>
    public static void Check(int result, string call)
    {
        if (result != 0)
            throw new InvalidOperationException($"CUDA driver: {call} failed with error {result} ({ErrorText(result)}).");
    }

    /// <summary>The driver's description of an error code.</summary>
    public static string ErrorText(int result) =>
        cuGetErrorString(result, out nint text) == 0 && text != 0 ? Marshal.PtrToStringAnsi(text) ?? "unknown error" : "unknown error";

    [LibraryImport(Library)]
    private static partial int cuGetErrorString(int error, out nint text);

    // Graphs ------------------------------------------------------------------------------------------

    [LibraryImport(Library, EntryPoint = "cuStreamBeginCapture_v2")]
    public static partial int cuStreamBeginCapture(nint stream, int mode);

    [LibraryImport(Library)]
    public static partial int cuStreamEndCapture(nint stream, out nint graph);

    [LibraryImport(Library)]
    public static partial int cuGraphInstantiateWithFlags(out nint graphExec, nint graph, ulong flags);

    [LibraryImport(Library)]
    public static partial int cuGraphLaunch(nint graphExec, nint stream);

    [LibraryImport(Library)]
    public static partial int cuGraphExecDestroy(nint graphExec);

    [LibraryImport(Library)]
    public static partial int cuGraphDestroy(nint graph);

    [LibraryImport(Library)]
    public static partial int cuGraphGetNodes(nint graph, nint* nodes, ref nuint count);

    // Modules of PTX text -------------------------------------------------------------------------------

    /// <summary><paramref name="image"/>: NUL-terminated PTX text; the driver JIT-compiles it.</summary>
    [LibraryImport(Library)]
    public static partial int cuModuleLoadData(out nint module, byte* image);

    /// <summary>With JIT options (e.g. CU_JIT_ERROR_LOG_BUFFER) so a PTX error can be reported.</summary>
    [LibraryImport(Library)]
    public static partial int cuModuleLoadDataEx(out nint module, byte* image, uint numOptions, int* options, nint* optionValues);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int cuModuleGetFunction(out nint function, nint module, string name);

    [LibraryImport(Library)]
    public static partial int cuModuleUnload(nint module);

    [LibraryImport(Library)]
    public static partial int cuFuncSetAttribute(nint function, int attribute, int value);

    [LibraryImport(Library)]
    public static partial int cuFuncGetAttribute(out int value, int attribute, nint function);

    [LibraryImport(Library)]
    public static partial int cuOccupancyMaxActiveBlocksPerMultiprocessor(out int blocks, nint function, int blockSize, nuint dynamicSharedBytes);

    /// <summary><paramref name="parameters"/>: one pointer per kernel parameter, to its value.</summary>
    [LibraryImport(Library)]
    public static partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedBytes, nint stream, void** parameters, void** extra);

    // Memory --------------------------------------------------------------------------------------------

    [LibraryImport(Library, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial int cuMemcpyHtoDAsync(nint destination, void* source, nuint bytes, nint stream);

    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial int cuMemcpyDtoHAsync(void* destination, nint source, nuint bytes, nint stream);

    // Events (timing) ---------------------------------------------------------------------------------------

    [LibraryImport(Library)]
    public static partial int cuEventCreate(out nint handle, uint flags);

    [LibraryImport(Library)]
    public static partial int cuEventRecord(nint handle, nint stream);

    [LibraryImport(Library)]
    public static partial int cuEventSynchronize(nint handle);

    [LibraryImport(Library)]
    public static partial int cuEventElapsedTime(out float milliseconds, nint start, nint end);

    [LibraryImport(Library, EntryPoint = "cuEventDestroy_v2")]
    public static partial int cuEventDestroy(nint handle);

    [LibraryImport(Library, EntryPoint = "cuMemGetInfo_v2")]
    public static partial int cuMemGetInfo(out nuint free, out nuint total);

    [LibraryImport(Library)]
    public static partial int cuStreamSynchronize(nint stream);
}
