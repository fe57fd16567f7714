using System.Runtime.InteropServices;

namespace Lowbit.Tensors;

/// <summary>Zeroed, 64-byte aligned native memory: weights and activations never sit on the managed
/// heap, and 64 bytes is one AVX-512 register and one cache line. Buffers of <see cref="HugePages.Threshold"/> or
/// more (quantized weights, KV caches) take huge pages.</summary>
public sealed unsafe class NativeBuffer : IDisposable
{
    public const int Alignment = 64;

    private void* _pointer;

    public NativeBuffer(long byteLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteLength);
        ByteLength = byteLength;
        _pointer = byteLength >= HugePages.Threshold ? HugePages.Allocate(byteLength) : NativeMemory.AlignedAlloc((nuint)Math.Max(byteLength, 1), Alignment);
        NativeMemory.Clear(_pointer, (nuint)byteLength);
        if (byteLength > 0)
            GC.AddMemoryPressure(byteLength);
    }

    public long ByteLength { get; }

    public nint Pointer => _pointer == null ? throw new ObjectDisposedException(nameof(NativeBuffer)) : (nint)_pointer;

    public void Dispose()
    {
        if (_pointer == null)
            return;
        NativeMemory.AlignedFree(_pointer);
        _pointer = null;
        if (ByteLength > 0)
            GC.RemoveMemoryPressure(ByteLength);
        GC.SuppressFinalize(this);
    }

    ~NativeBuffer() => Dispose();
}
