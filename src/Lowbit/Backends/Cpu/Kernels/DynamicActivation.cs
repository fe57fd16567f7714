using System.Runtime.InteropServices;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// The activation side of the dynamic-activation formats (int8dq, 8da4w): each token of x [M, K] is quantized to
/// int8 at run time, and its codes minus the zero point are kept as int16, c = q − z (exact: |c| ≤ 255), with
/// x ≈ c·s. Decode (M = 1) hands the format's GEMV token 0's codes (<see cref="PackedJob.XQ"/>) and scale
/// (<see cref="PackedJob.XScale"/>) for integer dot products; prefill replaces x by c·s (f32, exact) and runs the
/// shared unpack + dense tile, so both paths compute the same math.
/// </summary>
internal static unsafe class DynamicActivation
{
    /// <summary>torchao's per-token activation schemes.</summary>
    public enum Scheme
    {
        /// <summary>_int8_symm_per_token_reduced_range_quant: symmetric, [−127, 127], eps 1e−5, z = 0.</summary>
        Symmetric127,

        /// <summary>_int8_asymm_per_token_quant: asymmetric, [−128, 127], eps = f32 eps, integer z.</summary>
        Asymmetric,
    }

    [ThreadStatic]
    private static void* t_buffer;

    [ThreadStatic]
    private static nint t_bufferBytes;

    /// <summary>Quantizes the tokens of x and runs <typeparamref name="TF"/> through <see cref="PackedLinear"/>.</summary>
    public static void Compute<TF>(SimdLevel level, CpuThreadPool pool, string format, Scheme scheme, ReadOnlySpan<float> x, int m, PackedJob weight, Span<float> y)
        where TF : IPackedFormat
    {
        int k = weight.K;
        PackedLinear.CheckX(format, x, m, k);
        if (m == 1)
        {
            weight.XQ = (short*)Buffer((nint)k * sizeof(short));
            weight.XScale = QuantizeToken(scheme, x, new Span<short>(weight.XQ, k));
            PackedLinear.Compute<TF>(level, pool, format, x, m, weight, y);
            return;
        }

        float* buffer = (float*)Buffer(((nint)m * k * sizeof(float)) + ((nint)k * sizeof(short)));
        var fake = new Span<float>(buffer, m * k);
        var codes = new Span<short>(buffer + ((nint)m * k), k);
        for (int t = 0; t < m; t++)
        {
            float s = QuantizeToken(scheme, x.Slice(t * k, k), codes);
            Span<float> row = fake.Slice(t * k, k);
            for (int i = 0; i < k; i++)
                row[i] = codes[i] * s;
        }

        PackedLinear.Compute<TF>(level, pool, format, fake, m, weight, y);
    }

    /// <summary>One token's codes c = q − z (as int16) and its scale, exactly as torchao's choose_qparams_affine /
    /// quantize_affine in F32 (round half to even):
    /// <list type="bullet">
    /// <item>Symmetric127: s = max(max|x| / 127, 1e−5), q = clamp(round(x·(1/s)), −127, 127).</item>
    /// <item>Asymmetric: s = max((max(x, 0) − min(x, 0)) / 255, f32 eps), z = clamp(−128 − round(min(x, 0) / s),
    /// −128, 127), q = clamp(round(x·(1/s)) + z, −128, 127).</item>
    /// </list></summary>
    public static float QuantizeToken(Scheme scheme, ReadOnlySpan<float> x, Span<short> codes)
    {
        float min = 0, max = 0;
        foreach (float v in x)
        {
            min = MathF.Min(min, v);
            max = MathF.Max(max, v);
        }

        float scale, zero, qmin, qmax;
        if (scheme == Scheme.Symmetric127)
        {
            (scale, zero, qmin, qmax) = (MathF.Max(MathF.Max(-min, max) / 127f, 1e-5f), 0f, -127f, 127f);
        }
        else
        {
            scale = MathF.Max((max - min) / 255f, Quantization.Primitives.AffineScheme.F32Eps);
            (zero, qmin, qmax) = (Math.Clamp(-128f - MathF.Round(min / scale), -128f, 127f), -128f, 127f);
        }

        float inverse = 1f / scale;
        for (int i = 0; i < x.Length; i++)
            codes[i] = (short)(Math.Clamp(MathF.Round(x[i] * inverse) + zero, qmin, qmax) - zero);
        return scale;
    }

    /// <summary>This (calling) thread's activation buffer, grown to at least <paramref name="bytes"/>; kept for the
    /// thread's life, so decode allocates only on the first call. (The pool's workers have their own unpack
    /// scratch in <see cref="PackedLinear"/>; the caller is also worker 0, so this buffer is separate.)</summary>
    internal static void* Buffer(nint bytes)
    {
        if (t_bufferBytes < bytes)
        {
            NativeMemory.AlignedFree(t_buffer);
            t_buffer = NativeMemory.AlignedAlloc((nuint)bytes, 64);
            t_bufferBytes = bytes;
        }

        return t_buffer;
    }
}
