using Lowbit.Backends.Cpu;
using Lowbit.Quantization.Formats;
using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;
using Lowbit.Tests.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Formats;

/// <summary>Gaussian weights in a given dtype, the exact values they hold, and SQNR.</summary>
internal static class QuantTestData
{
    /// <summary>A [rows, cols] tensor of N(0, σ²) values stored in <paramref name="dtype"/>; <paramref name="exact"/>
    /// holds each stored value widened to float.</summary>
    public static Tensor Gaussian(DType dtype, int rows, int cols, Random rng, out float[] exact, float sigma = 0.05f)
    {
        var tensor = Tensor.Allocate(dtype, rows, cols);
        exact = new float[rows * cols];
        for (int i = 0; i < exact.Length; i++)
        {
            float v = sigma * (float)AffineTests.Gaussian(rng);
            switch (dtype)
            {
                case DType.F32:
                    tensor.AsSpan<float>()[i] = v;
                    break;
                case DType.BF16:
                    ushort bits = DTypeConversion.SingleToBFloat16(v);
                    tensor.AsSpan<ushort>()[i] = bits;
                    v = DTypeConversion.BFloat16ToSingle(bits);
                    break;
                case DType.F16:
                    tensor.AsSpan<Half>()[i] = (Half)v;
                    v = (float)(Half)v;
                    break;
            }

            exact[i] = v;
        }

        return tensor;
    }

    /// <summary>The reference Dequantize(row, destination) of any quantized weight type.</summary>
    public static Action<int, Span<float>> Reference(IWeight weight) => weight switch
    {
        Int8PerRowWeight w => w.Dequantize,
        Int4GroupedWeight w => w.Dequantize,
        CodedWeight w => w.Dequantize,
        Nf4DoubleQuantWeight w => w.Dequantize,
        Int8DynamicWeight w => w.Dequantize,
        Int4GroupedA8Weight w => w.Dequantize,
        Int8DynamicInt4Weight w => w.Dequantize,
        Float8DynamicWeight w => w.Dequantize,
        _ => throw new ArgumentOutOfRangeException(nameof(weight), weight.FormatName),
    };

    /// <summary>SQNR of a dynamic-activation format's layer output (its CPU kernel, which quantizes the activations)
    /// against the float layer, on the same data as <see cref="LayerSqnr"/>.</summary>
    public static double KernelLayerSqnr(Random rng, Func<Tensor, IWeight> quantize)
    {
        const int n = 64, k = 256, m = 8;
        using Tensor dense = Gaussian(DType.BF16, n, k, rng, out float[] exact);
        using IWeight w = quantize(dense);
        float[] x = Enumerable.Range(0, m * k).Select(_ => (float)AffineTests.Gaussian(rng)).ToArray();
        var y = new float[m * n];
        CpuLinearKernels.For(w)(CpuCapabilities.Best, CpuThreadPool.Shared, x, m, w, y);
        double sqnr = Sqnr(Linear(x, m, exact, n, k), y.Select(v => (double)v).ToArray());
        TestContext.Current.TestOutputHelper?.WriteLine($"SQNR {sqnr:F1} dB");
        return sqnr;
    }

    /// <summary>Every row of a format's reference dequantization, [N·K].</summary>
    public static float[] Dequantized(IWeight weight, Action<int, Span<float>> dequantize)
    {
        int n = weight.OutFeatures, k = weight.InFeatures;
        var all = new float[n * k];
        for (int r = 0; r < n; r++)
            dequantize(r, all.AsSpan(r * k, k));
        return all;
    }

    /// <summary>SQNR of a quantized linear layer's output against the float layer's (torchao's test): a BF16
    /// Gaussian weight [64, 256] quantized by <paramref name="quantize"/> and dequantized by its reference,
    /// 8 Gaussian input rows. The value goes to the test output.</summary>
    public static double LayerSqnr(Random rng, Func<Tensor, IWeight> quantize)
    {
        const int n = 64, k = 256, m = 8;
        using Tensor dense = Gaussian(DType.BF16, n, k, rng, out float[] exact);
        using IWeight weight = quantize(dense);
        float[] deq = Dequantized(weight, Reference(weight));
        float[] x = Enumerable.Range(0, m * k).Select(_ => (float)AffineTests.Gaussian(rng)).ToArray();
        double sqnr = Sqnr(Linear(x, m, exact, n, k), Linear(x, m, deq, n, k));
        TestContext.Current.TestOutputHelper?.WriteLine($"SQNR {sqnr:F1} dB");
        return sqnr;
    }

    /// <summary>10·log10(‖ref‖² / ‖ref − test‖²) in dB, as torchao's compute_error.</summary>
    public static double Sqnr(ReadOnlySpan<double> reference, ReadOnlySpan<double> test)
    {
        double signal = 0, noise = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            signal += reference[i] * reference[i];
            noise += (reference[i] - test[i]) * (reference[i] - test[i]);
        }

        return 10 * Math.Log10(signal / noise);
    }

    /// <summary>y = x·Wᵀ in double for x [m, K] and W [N, K].</summary>
    public static double[] Linear(float[] x, int m, float[] w, int n, int k)
    {
        var y = new double[m * n];
        for (int t = 0; t < m; t++)
        {
            for (int r = 0; r < n; r++)
            {
                double s = 0;
                for (int i = 0; i < k; i++)
                    s += (double)x[(t * k) + i] * w[(r * k) + i];
                y[(t * n) + r] = s;
            }
        }

        return y;
    }

    /// <summary>torchao's dynamic int8 activations, through the affine primitives: per token (row of x [m, K]),
    /// symmetric over [−127, 127] with eps 1e−5 (int8dq) or asymmetric over [−128, 127] with eps = f32 eps
    /// (8da4w), F32; returns (q − z)·s per element.</summary>
    public static float[] FakeQuantizedPerToken(float[] x, int m, int k, bool asymmetric = false)
    {
        var scheme = asymmetric
            ? new AffineScheme(MappingType.Asymmetric, QuantRange.Int8, ZeroPointDomain.Int, AffineScheme.F32Eps, DType.F32)
            : new AffineScheme(MappingType.Symmetric, new QuantRange(-127, 127), ZeroPointDomain.Int, 1e-5f, DType.F32);
        var result = new float[x.Length];
        var q = new int[k];
        for (int t = 0; t < m; t++)
        {
            var token = x.AsSpan(t * k, k);
            QParams p = Affine.ChooseQParams(token, scheme);
            Affine.Quantize(token, p, scheme, DType.F32, q);
            Affine.Dequantize(q, p, scheme, result.AsSpan(t * k, k));
        }

        return result;
    }

    /// <summary>x cast to E4M3 and back in blocks of <paramref name="blockSize"/> (a token, or the whole x), through
    /// the FloatScaling primitives: e4m3(x / s)·s with s = max(amax, 1e−12) / 448.</summary>
    public static float[] Float8Cast(float[] x, int blockSize)
    {
        var codes = new byte[x.Length];
        var scales = new float[x.Length / blockSize];
        var result = new float[x.Length];
        FloatScaling.Quantize(Float8E4M3.Format, x, blockSize, codes, scales);
        FloatScaling.Dequantize(Float8E4M3.Format, codes, scales, blockSize, result);
        return result;
    }
}
