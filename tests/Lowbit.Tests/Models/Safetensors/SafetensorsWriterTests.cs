using System.Runtime.InteropServices;
using Lowbit.Models.Safetensors;
using Lowbit.Tensors;

namespace Lowbit.Tests.Models.Safetensors;

public sealed class SafetensorsWriterTests : TempDirTests
{
    private static readonly SafetensorsEntry[] Entries =
    [
        new("embed", DType.F32, [3, 2]),
        new("bias", DType.BF16, [3]),
        new("nothing", DType.F16, [0]),
        new("codes", DType.U8, [5]),
    ];

    [Fact]
    public void RoundTripsThroughTheReader()
    {
        string path = Dir.File("rt.safetensors");
        float[] embed = [1, -2, 3.5f, 4, 5, -6.25f];
        ushort[] bias = [0x3F80, 0x4000, 0xC040];
        byte[] codes = [9, 8, 7, 6, 5];
        using (var writer = new SafetensorsWriter(path, Entries, new Dictionary<string, string> { ["format"] = "pt" }))
        {
            writer.WriteTensor("embed", MemoryMarshal.AsBytes(embed.AsSpan()));
            writer.WriteTensor("bias", MemoryMarshal.AsBytes(bias.AsSpan()));
            writer.WriteTensor("nothing", []);
            writer.WriteTensor("codes", codes);
            writer.Commit();
        }

        Assert.Equal(["rt.safetensors"], Dir.Entries());
        using var file = new SafetensorsFile(path);
        Assert.Equal(Entries.Select(e => e.Name), file.Names);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(embed, file.GetTensor("embed").AsSpan<float>().ToArray());
        Assert.Equal(bias, file.GetTensor("bias").AsSpan<ushort>().ToArray());
        Assert.Equal(codes, file.GetTensor("codes").AsSpan<byte>().ToArray());
        foreach (var e in Entries)
            Assert.Equal(e.Shape, file.GetInfo(e.Name).Shape);
        // The header is padded so the data section starts 8-byte aligned.
        Assert.Equal(0, BitConverter.ToInt64(File.ReadAllBytes(path), 0) % 8);
    }

    [Fact]
    public void WritesFromATensorView()
    {
        string path = Dir.File("view.safetensors");
        using var source = Tensor.Allocate(DType.F32, 2, 3);
        for (int i = 0; i < 6; i++)
            source.AsSpan<float>()[i] = i * 1.5f;
        using (var writer = new SafetensorsWriter(path, [new SafetensorsEntry("x", DType.F32, [2, 3])]))
        {
            writer.WriteTensor("x", source);
            writer.Commit();
        }
        using var file = new SafetensorsFile(path);
        Assert.Equal(source.AsSpan<float>().ToArray(), file.GetTensor("x").AsSpan<float>().ToArray());
    }

    [Fact]
    public void ExceptionMidwayLeavesNoDestinationAndNoTempFile()
    {
        string path = Dir.File("fail.safetensors");
        void FailMidway()
        {
            using var writer = new SafetensorsWriter(path, Entries);
            writer.WriteTensor("embed", new byte[24]);
            Assert.Single(Dir.Entries(), name => name.StartsWith("fail.safetensors.tmp-", StringComparison.Ordinal));
            throw new TimeoutException("the caller failed while producing the next tensor");
        }
        Assert.Throws<TimeoutException>(FailMidway);
        Assert.Empty(Dir.Entries());
    }

    [Fact]
    public void FailedWriteKeepsTheOldFile()
    {
        string path = Dir.File("keep.safetensors");
        File.WriteAllText(path, "old");
        using (var writer = new SafetensorsWriter(path, Entries))
            writer.WriteTensor("embed", new byte[24]);
        Assert.Equal(["keep.safetensors"], Dir.Entries());
        Assert.Equal("old", File.ReadAllText(path));
    }

    [Fact]
    public void CommitReplacesAnExistingFile()
    {
        string path = Dir.File("replace.safetensors");
        File.WriteAllText(path, "old");
        using (var writer = new SafetensorsWriter(path, [new SafetensorsEntry("a", DType.U8, [1])]))
        {
            writer.WriteTensor("a", [42]);
            writer.Commit();
        }
        using var file = new SafetensorsFile(path);
        Assert.Equal(42, file.GetTensor("a").AsSpan<byte>()[0]);
    }

    [Fact]
    public void RejectsTensorsOutOfOrderAndCleansUp()
    {
        string path = Dir.File("order.safetensors");
        using var writer = new SafetensorsWriter(path, Entries);
        var e = Assert.Throws<InvalidOperationException>(() => writer.WriteTensor("bias", new byte[6]));
        Assert.Contains("\"bias\" written where the declared order expects \"embed\" [3, 2] F32", e.Message);
        Assert.Empty(Dir.Entries());
    }

    [Fact]
    public void RejectsWrongByteCount()
    {
        string path = Dir.File("count.safetensors");
        using var writer = new SafetensorsWriter(path, Entries);
        var e = Assert.Throws<ArgumentException>(() => writer.WriteTensor("embed", new byte[20]));
        Assert.Contains("count.safetensors", e.Message);
        Assert.Contains("\"embed\" is declared \"embed\" [3, 2] F32, 24 bytes, but 20 bytes were given", e.Message);
        Assert.Empty(Dir.Entries());
    }

    [Fact]
    public void CommitBeforeAllTensorsAreWrittenFails()
    {
        string path = Dir.File("partial.safetensors");
        using var writer = new SafetensorsWriter(path, Entries);
        writer.WriteTensor("embed", new byte[24]);
        var e = Assert.Throws<InvalidOperationException>(writer.Commit);
        Assert.Contains("3 declared tensors were never written, the first is \"bias\"", e.Message);
        Assert.Empty(Dir.Entries());
    }

    [Fact]
    public void RejectsDuplicateNames()
    {
        var e = Assert.Throws<ArgumentException>(() => new SafetensorsWriter(Dir.File("dup.safetensors"),
            [new SafetensorsEntry("a", DType.U8, [1]), new SafetensorsEntry("a", DType.U8, [1])]));
        Assert.Contains("\"a\" is reserved or declared twice", e.Message);
        Assert.Empty(Dir.Entries());
    }
}
