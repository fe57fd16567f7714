using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using Lowbit.Cuda.Kernels;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>Timing of the decode GEMV on the device (bench, not a test): <c>copies</c> weight buffers used
/// in turn so each launch reads its weight from HBM rather than the 50 MB L2.</summary>
public sealed partial class CudaBackend
{

    /// <summary>Microseconds a bf16 GEMV [n, k] takes, the mean over <paramref name="iterations"/> launches
    /// queued back to back, and the bytes one launch moves (weight + x + y).</summary>
    public (double Microseconds, long Bytes) TimeGemv(int n, int k, DType dtype, int copies = 16, int iterations = 400)
    {
        int code = DenseElements.Code(dtype);
        long bytes = (long)n * k * dtype.Size();
        var weights = new MemoryBuffer1D<byte, Stride1D.Dense>[copies];
        using var x = _accelerator.Allocate1D<float>(k);
        using var y = _accelerator.Allocate1D<float>(n);
        try
        {
            var rng = new Random(7);
            var host = new byte[bytes];
            // Random bf16/f16 bit patterns of small magnitude: exponent bits kept low so no NaN or Inf.
            for (long i = 0; i < host.Length; i += 2)
            {
                host[i] = (byte)rng.Next(256);
                host[i + 1] = (byte)(rng.Next(2) << 7 | rng.Next(0x38, 0x3F));
            }
            for (int c = 0; c < copies; c++)
            {
                weights[c] = _accelerator.Allocate1D<byte>(bytes);
                weights[c].View.CopyFromCPU(host);
            }
            var xs = new float[k];
            for (int i = 0; i < k; i++)
                xs[i] = (float)rng.NextDouble();
            x.View.CopyFromCPU(xs);
            _accelerator.Synchronize();
            for (int c = 0; c < copies; c++)
                _linear.Launch(_stream, x.View, ((ArrayView<byte>)weights[c].View).Cast<uint>(), y.View, 1, n, k, code, vectorLoads: true);
            _stream.Synchronize();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++)
                _linear.Launch(_stream, x.View, ((ArrayView<byte>)weights[i % copies].View).Cast<uint>(), y.View, 1, n, k, code, vectorLoads: true);
            _stream.Synchronize();
            return (clock.Elapsed.TotalMicroseconds / iterations, bytes + 4L * (n + k));
        }
        finally
        {
            foreach (var w in weights)
                w?.Dispose();
        }
    }
}
