using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// RMSNorm folded into a GEMV's x (Backends/RmsNormed): the GEMV multiplies x by the norm weight g as it loads
/// it, sums x² beside its dot products, and scales each dot by 1/sqrt(Σx²/K + eps) at the end, so the normed x
/// is never written and the norm costs no launch of its own. Each warp sums x² over the x it reads (all of K,
/// across the warps that split a row), the same total the norm kernel computes. Off (the default) for plain x.
/// </summary>
public struct FoldedNorm
{
    /// <summary>g [K] (F32) as 16-byte vectors.</summary>
    public ArrayView<Float4> Weight;
    public float Eps;

    /// <summary>1 when x is to be normed.</summary>
    public int On;

    /// <summary>1/sqrt(Σx²/K + eps), or 1 when off.</summary>
    public readonly float Scale(float squares, int k) => On != 0 ? 1f / MathF.Sqrt((squares / k) + Eps) : 1f;

    public static Float4 Times(Float4 a, Float4 b) => new() { X = a.X * b.X, Y = a.Y * b.Y, Z = a.Z * b.Z, W = a.W * b.W };

    public static float Squares(Float4 a) => (a.X * a.X) + (a.Y * a.Y) + (a.Z * a.Z) + (a.W * a.W);
}
