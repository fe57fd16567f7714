using Lowbit.Models.IO;
using Lowbit.Tensors;

namespace Lowbit.Models.Safetensors;

/// <summary>One header entry: <paramref name="DataBegin"/> and <paramref name="DataEnd"/> are the
/// half-open byte range [begin, end) relative to the start of the data section, as the file stores them.</summary>
public sealed record SafetensorsTensorInfo(string Name, DType DType, int[] Shape, long DataBegin, long DataEnd)
{
    public long ByteLength => DataEnd - DataBegin;

    public override string ToString() => $"\"{Name}\" {Shapes.Format(Shape)} {DType}";
}
