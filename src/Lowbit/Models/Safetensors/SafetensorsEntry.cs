using Lowbit.Models.IO;
using Lowbit.Tensors;

namespace Lowbit.Models.Safetensors;

/// <summary>A tensor declared to a <see cref="SafetensorsWriter"/> before its bytes are written.</summary>
public sealed record SafetensorsEntry(string Name, DType DType, int[] Shape)
{
    public long ByteLength => (Shapes.ElementCount(Shape) ?? throw new ArgumentException($"Shape {Shapes.Format(Shape)} of \"{Name}\" is too large.")) * DType.Size();

    public override string ToString() => $"\"{Name}\" {Shapes.Format(Shape)} {DType}";
}
