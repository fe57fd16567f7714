using System.Runtime.CompilerServices;

namespace Lowbit.Tensors;

/// <summary>
/// A dense, row-major tensor in host memory that is not on the managed heap: either its own
/// <see cref="NativeBuffer"/> or a view into memory someone else owns (a memory-mapped safetensors
/// file). The last dimension is contiguous.
/// </summary>
public sealed unsafe class Tensor : IDisposable
{
    private readonly IDisposable? _owner;

    private Tensor(nint data, DType dtype, int[] shape, IDisposable? owner)
    {
        foreach (int d in shape)
            ArgumentOutOfRangeException.ThrowIfNegative(d, nameof(shape));
        Data = data;
        DType = dtype;
        Shape = shape;
        long count = 1;
        foreach (int d in shape)
            count *= d;
        ElementCount = count;
        _owner = owner;
    }

    /// <summary>Address of the first element.</summary>
    public nint Data { get; }

    public DType DType { get; }

    public int[] Shape { get; }

    public int Rank => Shape.Length;

    public long ElementCount { get; }

    public long ByteLength => ElementCount * DType.Size();

    /// <summary>Size of the last dimension (the contiguous one); 1 for a scalar.</summary>
    public int Columns => Shape.Length == 0 ? 1 : Shape[^1];

    /// <summary>Product of every dimension but the last.</summary>
    public long Rows => Shape.Length == 0 ? 1 : ElementCount / Math.Max(Columns, 1);

    /// <summary>A new zeroed tensor that owns its memory.</summary>
    public static Tensor Allocate(DType dtype, params int[] shape)
    {
        long count = 1;
        foreach (int d in shape)
            count *= d;
        var buffer = new NativeBuffer(count * dtype.Size());
        return new Tensor(buffer.Pointer, dtype, (int[])shape.Clone(), buffer);
    }

    /// <summary>A tensor over memory owned elsewhere; <paramref name="owner"/>, when given, is
    /// disposed with the tensor.</summary>
    public static Tensor View(nint data, DType dtype, int[] shape, IDisposable? owner = null) =>
        new(data, dtype, (int[])shape.Clone(), owner);

    /// <summary>The elements as a span; the tensor must fit a span (under 2^31 elements).</summary>
    public Span<T> AsSpan<T>() where T : unmanaged
    {
        if (sizeof(T) != DType.Size())
            throw new InvalidOperationException($"A {DType} tensor cannot be read as {typeof(T).Name}.");
        if (ElementCount > int.MaxValue)
            throw new InvalidOperationException($"Tensor of {ElementCount} elements is too large for one span; slice it by rows.");
        return new Span<T>((void*)Data, (int)ElementCount);
    }

    /// <summary>Row <paramref name="row"/> of the tensor viewed as [Rows, Columns].</summary>
    public Span<T> Row<T>(long row) where T : unmanaged
    {
        if (sizeof(T) != DType.Size())
            throw new InvalidOperationException($"A {DType} tensor cannot be read as {typeof(T).Name}.");
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Rows);
        return new Span<T>((void*)(Data + (nint)(row * Columns * sizeof(T))), Columns);
    }

    /// <summary>The raw bytes (under 2 GiB).</summary>
    public Span<byte> AsBytes()
    {
        if (ByteLength > int.MaxValue)
            throw new InvalidOperationException($"Tensor of {ByteLength} bytes is too large for one span.");
        return new Span<byte>((void*)Data, (int)ByteLength);
    }

    /// <summary>The tensor as [Rows, Columns].</summary>
    public TensorView View() => new(Data, DType, checked((int)Rows), Columns);

    /// <summary>Rows [<paramref name="start"/>, start + <paramref name="count"/>) of the tensor as [Rows, Columns].</summary>
    public TensorView Slice(int start, int count) => View().Slice(start, count);

    public ref T ElementRef<T>(long index) where T : unmanaged =>
        ref Unsafe.AsRef<T>((void*)(Data + (nint)(index * sizeof(T))));

    public override string ToString() => $"{DType}[{string.Join(", ", Shape)}]";

    public void Dispose() => _owner?.Dispose();
}
