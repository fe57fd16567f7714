using Lowbit.Quantization.Formats;
using Lowbit.Quantization.Primitives;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = Σ_k (e4m3(q_x[m, k])·s_x)·(e4m3(q_w[n, k])·s_w[n]) for a <see cref="Float8DynamicWeight"/>. This
/// CPU has no float8 dot product (nor does .NET 10 expose one), so both sides are decoded to f32: the activations
/// are cast to E4M3 and back once per call (x̂ = e4m3(x / s_x)·s_x, per token or over the whole call, into a
/// per-thread buffer), then <see cref="Float8PerRowGemv"/> runs on x̂: the weight costs what fp8wo's does, the
/// cast K (decode) or M·K (prefill) scalar operations.
/// Measured 2026-11-24, `lowbit-bench linear --threads 1 --layers 2` (2 blocks of dim 2048 / hidden 5632, best of 10,
/// round-robin with bf16 8.33 ms, int8wo 3.81, int4wo-64 4.38), 2-core Zen 5 VM at load average 7-12: fp8dq-row 6.12 ms a step (fp8wo 6.15: the cast of one token is noise).
/// </summary>
internal static unsafe class Float8DynamicGemv
{
    /// <summary>y[m, N] = cast(x)[m, K] · deq(W)ᵀ on <paramref name="pool"/>.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Float8DynamicWeight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        int k = weight.InFeatures;
        PackedLinear.CheckX(weight.FormatName, x, m, k);
        var cast = new Span<float>(DynamicActivation.Buffer((nint)m * k * sizeof(float)), m * k);
        if (weight.Granularity == Float8Granularity.PerRow)
        {
            for (int t = 0; t < m; t++)
                Cast(x.Slice(t * k, k), cast.Slice(t * k, k));
        }
        else
        {
            Cast(x, cast);
        }

        Float8PerRowGemv.Compute(level, pool, cast, m, weight.Weight, y);
    }

    /// <summary>destination = e4m3(x / s)·s with s = max(max|x|, 1e−12) / 448 (torchao's _choose_scale_float8,
    /// _quantize_affine_float8, then the dequantization its fallback matmul does).</summary>
    internal static void Cast(ReadOnlySpan<float> x, Span<float> destination)
    {
        FloatX format = Float8E4M3.Format;
        float scale = FloatScaling.ChooseScale(format, x);
        for (int i = 0; i < x.Length; i++)
            destination[i] = format.Decode(format.Encode(x[i] / scale)) * scale;
    }
}
