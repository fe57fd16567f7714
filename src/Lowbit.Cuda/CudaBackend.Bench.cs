using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using Lowbit.Cuda.Kernels;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>What benchmarks on the device need: random tensors made on the GPU, the copy roofline, memory in use.</summary>
public sealed partial class CudaBackend
{
    /// <summary>Decode operations (m = 1) to leave out, for the bench's what-if timings: how much a step would
    /// gain if they cost nothing (the tokens are then garbage). Prefill is never affected.</summary>
    public DecodeOps Skipped { get; set; }

    private bool Skips(DecodeOps op, int rows) => rows == 1 && (Skipped & op) != 0;

    private Action<AcceleratorStream, Index1D, ArrayView<Uint4>, ArrayView<Uint4>> _copy =>
        field ??= _accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<Uint4>, ArrayView<Uint4>>(CopyKernel);

    /// <summary>A [rows, columns] dense tensor in device memory of random values of magnitude ~2^−7 (random sign
    /// and mantissa, as <see cref="RandomWeight"/>'s dense weights): random weights without a host copy.</summary>
    public Tensor RandomTensor(DType dtype, int rows, int columns, uint seed)
    {
        var (keep, set) = DenseRandomMasks(dtype);
        return BitsTensor(dtype, rows, columns, seed, keep, set);
    }

    /// <summary>An F32 [rows, columns] tensor in device memory with every element <paramref name="value"/>.</summary>
    public Tensor ConstantTensor(float value, int rows, int columns) =>
        BitsTensor(DType.F32, rows, columns, 0, 0, BitConverter.SingleToUInt32Bits(value));

    private Tensor BitsTensor(DType dtype, int rows, int columns, uint seed, uint keep, uint set)
    {
        var tensor = Allocate(dtype, rows, columns);
        (_randomBits ??= new RandomBits(_accelerator)).Launch(_stream, Words(tensor), seed, keep, set);
        _stream.Synchronize();
        return tensor;
    }

    /// <summary>Device-to-device copy speed in GB/s (bytes read + bytes written), the best of
    /// <paramref name="iterations"/> copies of <paramref name="megabytes"/> MB with 16-byte loads and stores:
    /// the roofline a memory-bound kernel is judged by on this GPU.</summary>
    public double CopyBandwidth(int megabytes = 1024, int iterations = 20)
    {
        long bytes = (long)megabytes << 20;
        using var source = _accelerator.Allocate1D<Uint4>(bytes / 16);
        using var destination = _accelerator.Allocate1D<Uint4>(bytes / 16);
        source.MemSetToZero(_stream);
        double best = 0;
        for (int i = 0; i <= iterations; i++)
        {
            _stream.Synchronize();
            var clock = Stopwatch.StartNew();
            _copy(_stream, (int)source.Length, source.View, destination.View);
            _stream.Synchronize();
            if (i > 0)
                best = Math.Max(best, 2.0 * bytes / clock.Elapsed.TotalSeconds / 1e9);
        }
        return best;
    }

    /// <summary>Bytes of GPU memory in use on the device (by every process), from the driver.</summary>
    public static long DeviceMemoryUsed()
    {
        Driver.CudaDriver.Check(Driver.CudaDriver.cuMemGetInfo(out nuint free, out nuint total), "cuMemGetInfo");
        return (long)(total - free);
    }

    private static void CopyKernel(Index1D i, ArrayView<Uint4> source, ArrayView<Uint4> destination) => destination[i] = source[i];
}

/// <summary>Operations of a decode step <see cref="CudaBackend.Skipped"/> can leave out.</summary>
[Flags]
public enum DecodeOps
{
    None = 0,
    /// <summary>RMSNorm and the residual add fused with it.</summary>
    Norms = 1,
    /// <summary>RoPE and the KV-cache store.</summary>
    Rope = 2,
    Attention = 4,
}
