using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using Lowbit.Cuda.Kernels;
using Lowbit.Cuda.Ptx;

namespace Lowbit.Cuda;

/// <summary>Timing of the prefill GEMM on the device (bench, not a test): y[m, n] = x[m, k] · w[n, k]ᵀ, bf16 w,
/// f32 x and y, the tensor-core kernels (bf16 conversion of x included) beside the ILGPU GEMM, and int8dq's int8 GEMM.</summary>
public sealed partial class CudaBackend
{
    /// <summary>Microseconds one GEMM takes with each tiling (null: the ILGPU GEMM), the mean over launches queued
    /// back to back for about 50 ms, with the bf16 conversion of x and without it (the GEMM kernel alone; the same
    /// for the ILGPU GEMM), and the int8 GEMM kernel of the tiling on int8 operands of the same shape (NaN for the
    /// ILGPU GEMM); a tiling whose PTX does not load reports the driver's error instead.</summary>
    public List<(GemmTile? Tile, double Microseconds, double GemmMicroseconds, double Int8Microseconds, string? Error)> TimeGemm(int m, int n, int k, IReadOnlyList<GemmTile?> tiles)
    {
        ArgumentNullException.ThrowIfNull(tiles);
        var rng = new Random(11);
        var xs = new float[(long)m * k];
        for (long i = 0; i < xs.Length; i++)
            xs[i] = (float)(rng.NextDouble() * 2 - 1);
        // Random bf16 bit patterns of small magnitude: exponent bits kept low so no NaN or Inf.
        var ws = new byte[(long)n * k * 2];
        for (long i = 0; i < ws.Length; i += 2)
        {
            ws[i] = (byte)rng.Next(256);
            ws[i + 1] = (byte)(rng.Next(2) << 7 | rng.Next(0x38, 0x3F));
        }
        using var x = _accelerator.Allocate1D(xs);
        using var w = _accelerator.Allocate1D(ws);
        using var y = _accelerator.Allocate1D<float>((long)m * n);
        using var scratch = _accelerator.Allocate1D<byte>((long)m * k * 2);
        // int8: the bf16 scratch's bytes as codes, w's as q + 128, unit scales, zero sums (values do not change the time).
        using var rowScales = _accelerator.Allocate1D(Enumerable.Repeat(1f, m).ToArray());
        using var columnScales = _accelerator.Allocate1D(Enumerable.Repeat(1f, n).ToArray());
        using var sums = _accelerator.Allocate1D(new int[m]);
        var results = new List<(GemmTile?, double, double, double, string?)>();
        foreach (var tile in tiles)
        {
            if (tile is null)
            {
                double us = Time(() => _linear.Launch(_stream, x.View, ((ArrayView<byte>)w.View).Cast<uint>(), y.View, m, n, k, DenseElements.BF16, vectorLoads: false));
                results.Add((tile, us, us, double.NaN, null));
                continue;
            }
            TensorCoreGemm gemm;
            try
            {
                gemm = TensorCoreGemmFor(tile);
            }
            catch (InvalidOperationException e)
            {
                results.Add((tile, double.NaN, double.NaN, double.NaN, e.Message));
                continue;
            }
            var stream = _stream;
            results.Add((tile, Time(() => gemm.Launch(stream, x.NativePtr, scratch.NativePtr, w.NativePtr, y.NativePtr, m, n, k)),
                Time(() => gemm.Multiply(stream, scratch.NativePtr, w.NativePtr, y.NativePtr, m, n, k)),
                k % 16 == 0 && Int8Loads(gemm) ? Time(() => gemm.Int8(stream, scratch.NativePtr, w.NativePtr, y.NativePtr, m, n, k, rowScales.NativePtr, sums.NativePtr, columnScales.NativePtr)) : double.NaN,
                null));
        }
        return results;
    }

    private static bool Int8Loads(TensorCoreGemm gemm)
    {
        try
        {
            gemm.LoadInt8();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Mean microseconds of <paramref name="launch"/> over about 50 ms of launches queued back to back.</summary>
    private double Time(Action launch)
    {
        launch();
        _accelerator.Synchronize();
        var clock = Stopwatch.StartNew();
        launch();
        _accelerator.Synchronize();
        int iterations = (int)Math.Clamp(50e3 / clock.Elapsed.TotalMicroseconds, 3, 500);
        clock.Restart();
        for (int i = 0; i < iterations; i++)
            launch();
        _accelerator.Synchronize();
        return clock.Elapsed.TotalMicroseconds / iterations;
    }
}
