using System.Buffers.Binary;
using System.Text;

namespace Lowbit.Tests.Models.Safetensors;

/// <summary>Writes safetensors bytes by hand, so tests can build files the writer would refuse to make.</summary>
public static class RawSafetensors
{
    /// <summary>An 8-byte header length, the header text, then <paramref name="data"/>.</summary>
    public static string Write(string path, string header, byte[] data)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + json.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>The header JSON for one tensor.</summary>
    public static string One(string name, string dtype, string shape, long begin, long end) =>
        $$$"""{"{{{name}}}": {"dtype": "{{{dtype}}}", "shape": {{{shape}}}, "data_offsets": [{{{begin}}}, {{{end}}}]}}""";
}
