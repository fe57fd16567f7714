using System.Diagnostics;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Cuda.Driver;
using Lowbit.Cuda.Kernels;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>Timing of the decode GEMVs on the device (bench, not a test): <c>copies</c> random weights
/// (<see cref="RandomWeight"/>) used in turn so each launch reads its weight from HBM rather than the 50 MB L2.</summary>
public sealed partial class CudaBackend
{
    /// <summary>The formats <see cref="TimeGemv"/> is run on by <c>lowbit selftest --bench</c>.</summary>
    public static IReadOnlyList<string> BenchFormats { get; } = ["bf16", "int8wo", "int8dq", "fp8wo", "int4wo-32", "int4wo-64", "int4wo-128", "int4wo-256"];

    /// <summary>Microseconds a GEMV [n, k] of <paramref name="format"/> (a <see cref="RandomWeight"/> name) takes
    /// through <see cref="Linear"/>, the mean over <paramref name="iterations"/> calls queued back to back (int8dq's
    /// include its activation quantization), the bytes one call moves (weight, scales and zeros + x + y), and the
    /// GEMV kernel's resources on a GPU (registers and local bytes a thread, resident warps an SM; empty for dense).</summary>
    public (double Microseconds, long Bytes, string Resources) TimeGemv(string format, int n, int k, int copies = 16, int iterations = 400)
    {
        var weights = new CudaWeight[copies];
        using var x = Allocate(DType.F32, 1, k);
        using var y = Allocate(DType.F32, 1, n);
        try
        {
            for (int c = 0; c < copies; c++)
                weights[c] = RandomWeight(format, n, k, seed: c + 1);
            var rng = new Random(7);
            var xs = new float[k];
            for (int i = 0; i < k; i++)
                xs[i] = (float)(rng.NextDouble() * 2 - 1);
            CopyFromHost(xs, x.View());
            // Warm-up: loads (compiles) the kernels and touches every copy once.
            for (int c = 0; c < copies; c++)
                Linear(x.View(), weights[c], y.View());
            _stream.Synchronize();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++)
                Linear(x.View(), weights[i % copies], y.View());
            _stream.Synchronize();
            return (clock.Elapsed.TotalMicroseconds / iterations, weights[0].ByteLength + 4L * (n + k), Resources(GemvKernel(weights[0].Format)));
        }
        finally
        {
            foreach (var w in weights)
                w?.Dispose();
        }
    }

    /// <summary>"R regs, L B local, W warps/SM" for a GEMV kernel compiled for a CUDA GPU; empty otherwise.</summary>
    private string Resources(Kernel? kernel)
    {
        if (kernel is not CudaKernel cuda)
            return "";
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(out int registers, CudaDriver.FunctionAttributeRegisters, cuda.FunctionPtr), "cuFuncGetAttribute");
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(out int local, CudaDriver.FunctionAttributeLocalBytes, cuda.FunctionPtr), "cuFuncGetAttribute");
        int groups = _accelerator.EstimateMaxActiveGroupsPerMultiprocessor(kernel, GemvRows.GroupSize, 0);
        return $"{registers} regs, {local} B local, {groups * GemvRows.WarpsPerGroup} warps/SM";
    }
}
