using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// How a kernel reads and writes the elements of a KV cache [maxSeq, kvHeads·D]: f32, or bf16 (half the bytes;
/// rounded to nearest even as stored, as the CPU backend's cache is). Kernels are generic over it, one instance a
/// cache type, so the f32 instance compiles to what it was before.
/// </summary>
public interface IKvElements
{
    float Load(long i);

    void Store(long i, float value);

    /// <summary>Elements 4·<paramref name="quad"/> .. 4·quad + 3 in one load (the cache 16-byte aligned for f32,
    /// 8-byte for bf16).</summary>
    Float4 Load4(long quad);
}

public struct F32Kv : IKvElements
{
    public ArrayView<float> Data;

    /// <summary>The same memory as 16-byte vectors (empty when the cache is not 16-byte aligned).</summary>
    public ArrayView<Float4> Quads;

    public F32Kv(ArrayView<float> data)
    {
        Data = data;
        Quads = KvQuads.Of<float, Float4>(data);
    }

    public readonly float Load(long i) => Data[i];

    public readonly void Store(long i, float value) => Data[i] = value;

    public readonly Float4 Load4(long quad) => Quads[quad];
}

public struct Bf16Kv : IKvElements
{
    public ArrayView<ushort> Data;

    /// <summary>The same memory as 8-byte words of four elements (empty when the cache is not 8-byte aligned).</summary>
    public ArrayView<ulong> Quads;

    public Bf16Kv(ArrayView<ushort> data)
    {
        Data = data;
        Quads = KvQuads.Of<ushort, ulong>(data);
    }

    public readonly float Load(long i) => DenseElements.Bf16(Data[i]);

    public readonly void Store(long i, float value) => Data[i] = (ushort)DenseElements.ToBf16(value);

    public readonly Float4 Load4(long quad)
    {
        ulong word = Quads[quad];
        uint low = (uint)word, high = (uint)(word >> 32);
        return new Float4
        {
            X = DenseElements.Low(low, DenseElements.BF16),
            Y = DenseElements.High(low, DenseElements.BF16),
            Z = DenseElements.Low(high, DenseElements.BF16),
            W = DenseElements.High(high, DenseElements.BF16),
        };
    }
}

internal static class KvQuads
{
    /// <summary><paramref name="data"/> as vectors of four elements (<typeparamref name="TQuad"/>), or empty when the
    /// cache is not aligned to one.</summary>
    public static ArrayView<TQuad> Of<T, TQuad>(ArrayView<T> data)
        where T : unmanaged
        where TQuad : unmanaged =>
        data.LoadEffectiveAddressAsPtr() % Interop.SizeOf<TQuad>() == 0 ? data.SubView(0, data.Length / 4 * 4).Cast<TQuad>() : default;
}

/// <summary>A kernel's instances, one a cache element type, each loaded (compiled) on first use.</summary>
internal sealed class KvKernels
{
    private readonly Dictionary<Type, Delegate> _loaded = [];

    public TDelegate Get<TKv, TDelegate>(Func<TDelegate> load)
        where TKv : struct, IKvElements
        where TDelegate : Delegate
    {
        if (!_loaded.TryGetValue(typeof(TKv), out var kernel))
        {
            kernel = load();
            _loaded.Add(typeof(TKv), kernel);
        }
        return (TDelegate)kernel;
    }
}
