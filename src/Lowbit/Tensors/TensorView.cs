namespace Lowbit.Tensors;

/// <summary>
/// A window of rows of a 2-D tensor: what backend operations read and write. A struct, so slicing
/// activations and KV-cache rows in the decode loop allocates nothing.
/// </summary>
public readonly unsafe struct TensorView
{
    public TensorView(nint data, DType dtype, int rows, int columns)
    {
        Data = data;
        DType = dtype;
        Rows = rows;
        Columns = columns;
    }

    public nint Data { get; }
    public DType DType { get; }
    public int Rows { get; }
    public int Columns { get; }
    public long ElementCount => (long)Rows * Columns;

    /// <summary>Rows [<paramref name="start"/>, start + <paramref name="count"/>).</summary>
    public TensorView Slice(int start, int count)
    {
        if ((uint)start > (uint)Rows || (uint)count > (uint)(Rows - start))
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) outside [0, {Rows})");
        return new TensorView(Data + (nint)start * Columns * DType.Size(), DType, count, Columns);
    }

    public Span<T> AsSpan<T>() where T : unmanaged
    {
        if (sizeof(T) != DType.Size())
            throw new InvalidOperationException($"A {DType} view cannot be read as {typeof(T).Name}.");
        return new Span<T>((void*)Data, checked((int)ElementCount));
    }

    /// <summary>The view's bytes, whatever its dtype.</summary>
    public Span<byte> AsBytes() => new((void*)Data, checked((int)(ElementCount * DType.Size())));

    public Span<T> Row<T>(int row) where T : unmanaged => Slice(row, 1).AsSpan<T>();

    public override string ToString() => $"{DType}[{Rows}, {Columns}]";
}
