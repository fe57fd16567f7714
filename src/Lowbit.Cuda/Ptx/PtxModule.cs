using System.Runtime.InteropServices;
using System.Text;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Cuda.Driver;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// PTX text of ours JIT-compiled by the driver (<c>cuModuleLoadDataEx</c>, no CUDA toolkit) in the context of an
/// ILGPU CUDA accelerator. A PTX error throws with the JIT's error log in the message; <see cref="InfoLog"/>
/// keeps ptxas's verbose report (registers, spills) of a module that loaded.
/// </summary>
public sealed unsafe class PtxModule : IDisposable
{
    private const int LogBytes = 1 << 16;
    private readonly Accelerator _accelerator;
    private nint _module;

    /// <param name="name">Names the module in error messages.</param>
    public PtxModule(Accelerator accelerator, string ptx, string name)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(ptx);
        if (accelerator is not CudaAccelerator)
            throw new NotSupportedException($"{name}: PTX modules need a CUDA accelerator, not {accelerator.AcceleratorType}.");
        _accelerator = accelerator;
        accelerator.Bind(); // the driver loads into the calling thread's current context
        byte[] image = Encoding.ASCII.GetBytes(ptx + "\0");
        byte* info = (byte*)NativeMemory.AllocZeroed(LogBytes), error = (byte*)NativeMemory.AllocZeroed(LogBytes);
        try
        {
            int* options = stackalloc int[] { CudaDriver.JitInfoLogBuffer, CudaDriver.JitInfoLogBufferBytes, CudaDriver.JitErrorLogBuffer, CudaDriver.JitErrorLogBufferBytes, CudaDriver.JitLogVerbose };
            nint* values = stackalloc nint[] { (nint)info, LogBytes, (nint)error, LogBytes, 1 };
            int result;
            fixed (byte* text = image)
                result = CudaDriver.cuModuleLoadDataEx(out _module, text, 5, options, values);
            InfoLog = Log(info);
            if (result != 0)
                throw new InvalidOperationException($"{name}: the driver's JIT rejected the PTX: error {result} ({CudaDriver.ErrorText(result)}). JIT log: {Log(error)} {InfoLog}".TrimEnd());
        }
        finally
        {
            NativeMemory.Free(info);
            NativeMemory.Free(error);
        }
    }

    public string InfoLog { get; }

    /// <summary>The kernel <paramref name="entry"/>, allowed <paramref name="dynamicSharedBytes"/> of dynamic shared
    /// memory (past 48 KB a block needs the function attribute).</summary>
    public PtxFunction Function(string entry, int dynamicSharedBytes)
    {
        _accelerator.Bind();
        CudaDriver.Check(CudaDriver.cuModuleGetFunction(out nint function, _module, entry), $"cuModuleGetFunction({entry})");
        if (dynamicSharedBytes > 48 * 1024)
        {
            CudaDriver.Check(CudaDriver.cuFuncSetAttribute(function, CudaDriver.FunctionAttributeMaxDynamicSharedBytes, dynamicSharedBytes), $"cuFuncSetAttribute({entry}, max dynamic shared {dynamicSharedBytes})");
            CudaDriver.Check(CudaDriver.cuFuncSetAttribute(function, CudaDriver.FunctionAttributePreferredSharedCarveout, 100), $"cuFuncSetAttribute({entry}, carveout)");
        }
        return new PtxFunction(_accelerator, function, entry, dynamicSharedBytes);
    }

    public void Dispose()
    {
        if (_module == 0)
            return;
        _accelerator.Bind();
        CudaDriver.cuModuleUnload(_module);
        _module = 0;
    }

    private static string Log(byte* buffer) => Marshal.PtrToStringAnsi((nint)buffer)?.Trim() ?? "";
}

/// <summary>A kernel of a <see cref="PtxModule"/>, launched with <c>cuLaunchKernel</c> on an ILGPU stream, so it is
/// ordered with the ILGPU kernels on that stream and joins a CUDA graph captured there.</summary>
public sealed unsafe class PtxFunction(Accelerator accelerator, nint handle, string name, int dynamicSharedBytes)
{
    public string Name => name;

    public int Registers => Attribute(CudaDriver.FunctionAttributeRegisters);

    /// <summary>Local memory a thread: register spills.</summary>
    public int LocalBytes => Attribute(CudaDriver.FunctionAttributeLocalBytes);

    /// <param name="sharedBytes">Dynamic shared memory a block (−1: the function's).</param>
    public int BlocksPerMultiprocessor(int threads, int sharedBytes = -1)
    {
        accelerator.Bind();
        nuint shared = (nuint)(sharedBytes < 0 ? dynamicSharedBytes : sharedBytes);
        CudaDriver.Check(CudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor(out int blocks, handle, threads, shared), $"occupancy of {name}");
        return blocks;
    }

    /// <param name="arguments">One pointer per kernel parameter, to its value.</param>
    /// <param name="sharedBytes">Dynamic shared memory of this launch, at most the function's (−1: the function's).</param>
    public void Launch(AcceleratorStream stream, int gridX, int gridY, int threads, void** arguments, int sharedBytes = -1)
    {
        if (sharedBytes > dynamicSharedBytes)
            throw new ArgumentOutOfRangeException(nameof(sharedBytes), sharedBytes, $"{name} was loaded for at most {dynamicSharedBytes} B of dynamic shared memory.");
        int shared = sharedBytes < 0 ? dynamicSharedBytes : sharedBytes;
        ArgumentNullException.ThrowIfNull(stream);
        if (stream is not CudaStream cuda)
            throw new NotSupportedException($"{name}: PTX kernels launch on a CUDA stream, not {stream.GetType().Name}.");
        accelerator.Bind();
        CudaDriver.Check(CudaDriver.cuLaunchKernel(handle, (uint)gridX, (uint)gridY, 1, (uint)threads, 1, 1, (uint)shared, cuda.StreamPtr, arguments, null),
            $"cuLaunchKernel({name}, grid {gridX}x{gridY}, {threads} threads, {shared} B shared)");
    }

    private int Attribute(int attribute)
    {
        accelerator.Bind();
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(out int value, attribute, handle), $"cuFuncGetAttribute({name}, {attribute})");
        return value;
    }
}
